// Node module-resolution hooks (registered by loadRegistry through node:module's `register`): a plugin that
// lives outside the llmed checkout — a folder listed in workspace.json, or a package installed somewhere
// else — imports `@llmed/core` (and `@llmed/imaging`, ...) like a first-party plugin does, although no
// node_modules above it holds them. Only a bare `@llmed/...` specifier that Node's own resolution cannot
// find is mapped, to the very files llmed itself runs, so the plugin and llmed share one copy of each
// module (one ContainerModule class, one registry). A plugin that installs its own @llmed packages keeps them.
let packages = {};

export async function initialize(data) {
  packages = data?.packages ?? {};
}

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    const target = specifier.startsWith('@llmed/') ? packages[specifier] : undefined;
    if (!target || error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    return nextResolve(target, context);
  }
}
