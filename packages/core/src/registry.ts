/**
 * The plugin registry: an inversify container into which every plugin package listed in workspace.json
 * loads its ContainerModule. It is the single source of truth for `llmed plugins list`, composition,
 * the docs table and the registry-walking tests.
 */
import { existsSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { register } from 'node:module';
import { Container, ContainerModule } from 'inversify';
import { didYouMean, LlmedError, pluginError } from './errors.ts';
import { moduleDescriptors, PLUGIN, pluginKey, type PluginDescriptor, type PluginKind, type PythonEntry, PLUGIN_KINDS } from './plugin.ts';
import type { Workspace } from './workspace.ts';

export interface LoadedPlugin { descriptor: PluginDescriptor<any>; source: string }

export class Registry {
  readonly container: Container;
  private readonly sources = new Map<string, string>();

  constructor() {
    this.container = new Container();
  }

  /** Load a plugin module; `source` says where it came from (package name or folder) for messages. */
  load(module: ContainerModule, source: string): void {
    const descriptors = moduleDescriptors(module);
    if (!descriptors) throw pluginError(source, 'its default export is not a ContainerModule made by pluginModule() from @llmed/core');
    for (const d of descriptors) {
      validateDescriptor(d, source);
      const prior = this.sources.get(d.id);
      if (prior) throw pluginError(source, `plugin id '${d.id}' is already registered by ${prior}`);
    }
    this.container.load(module);
    for (const d of descriptors) this.sources.set(d.id, source);
  }

  has(id: string): boolean { return this.container.isBound(pluginKey(id)); }

  /** The descriptor bound under `id`; an unknown id lists the known ones (of the expected kind). */
  get(id: string, kind?: PluginKind, where = 'plugin'): PluginDescriptor<any> {
    if (!this.has(id)) {
      const known = this.list(kind).map((d) => d.id);
      throw pluginError(where, `unknown plugin '${id}'${kind ? ` (kind ${kind})` : ''}${didYouMean(id, known)}; known: ${known.join(', ') || '(none)'}`,
        'a third-party plugin must be listed under "plugins" in workspace.json');
    }
    const d = this.container.get<PluginDescriptor<any>>(pluginKey(id));
    if (kind && d.kind !== kind) {
      const known = this.list(kind).map((x) => x.id);
      throw pluginError(where, `plugin '${id}' is a ${d.kind}, but a ${kind} is needed here; ${kind} plugins: ${known.join(', ')}`);
    }
    return d;
  }

  list(kind?: PluginKind): PluginDescriptor<any>[] {
    const all = this.container.isBound(PLUGIN) ? this.container.getAll<PluginDescriptor<any>>(PLUGIN) : [];
    return all.filter((d) => !kind || d.kind === kind).sort((a, b) => a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id));
  }

  sourceOf(id: string): string | undefined { return this.sources.get(id); }

  /**
   * The python entry of every registered plugin that has one, by id: the only place the Python side takes
   * plugin code from. A spec read from a run folder names plugins by id; its paths are never imported.
   */
  pythonEntries(): Record<string, PythonEntry> {
    return Object.fromEntries(this.list().filter((d) => d.python).map((d) => [d.id, { ...d.python! }]));
  }
}

function validateDescriptor(d: PluginDescriptor<any>, source: string): void {
  if (!d || typeof d !== 'object') throw pluginError(source, 'descriptor is not an object');
  if (typeof d.id !== 'string' || !/^[a-z0-9][a-z0-9-]*$/.test(d.id)) throw pluginError(source, `bad plugin id ${JSON.stringify(d.id)}: use lower-case letters, digits and dashes`);
  if (!PLUGIN_KINDS.includes(d.kind)) throw pluginError(source, `plugin '${d.id}' has kind ${JSON.stringify(d.kind)}; kinds: ${PLUGIN_KINDS.join(', ')}`);
  if (!d.options || d.options.type !== 'object') throw pluginError(source, `plugin '${d.id}' needs an options JSON schema of type object`);
  if (['Encoder', 'LLMBackbone', 'Adapter', 'Decoder'].includes(d.kind) && typeof d.shape !== 'function') throw pluginError(source, `plugin '${d.id}' (${d.kind}) needs a shape rule`);
  if (d.python && !existsSync(d.python.root)) throw pluginError(source, `plugin '${d.id}' names python root ${d.python.root}, which does not exist`);
}

/** Expand workspace.json `plugins` entries to (package folder or name, entry file). */
export function pluginEntries(ws: Workspace): { source: string; entry: string }[] {
  const out: { source: string; entry: string }[] = [];
  for (const spec of ws.plugins) {
    if (spec.startsWith('.') || spec.startsWith('/')) {
      const base = resolve(ws.root, spec.endsWith('/*') ? spec.slice(0, -2) : spec);
      const dirs = spec.endsWith('/*')
        ? (existsSync(base) ? readdirSync(base, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(base, e.name)).filter((d) => existsSync(join(d, 'package.json'))).sort() : [])
        : [base];
      for (const dir of dirs) out.push({ source: spec.endsWith('/*') ? (dir.startsWith(ws.root + sep) ? dir.slice(ws.root.length + 1) : dir) : spec, entry: packageEntry(dir, `${ws.file} plugins "${spec}"`) });
    } else {
      const dir = findPackageDir(ws.root, spec);
      if (!dir) throw pluginError(`${ws.file} plugins "${spec}"`, `package '${spec}' is not installed`, `npm install ${spec} in the workspace root`);
      out.push({ source: spec, entry: packageEntry(dir, `${ws.file} plugins "${spec}"`) });
    }
  }
  return out;
}

function findPackageDir(root: string, name: string): string | undefined {
  for (let dir = root; ; dir = dirname(dir)) {
    const cand = join(dir, 'node_modules', name);
    if (existsSync(join(cand, 'package.json'))) return cand;
    if (dirname(dir) === dir) return undefined;
  }
}

function packageEntry(dir: string, where: string): string {
  const pj = join(dir, 'package.json');
  if (!existsSync(pj)) throw pluginError(where, `${dir} has no package.json`);
  const pkg = JSON.parse(readFileSync(pj, 'utf8')) as { exports?: unknown; main?: string };
  let rel: string | undefined;
  const ex = pkg.exports as any;
  if (typeof ex === 'string') rel = ex;
  else if (ex && typeof ex === 'object') {
    const dot = ex['.'] ?? ex;
    rel = typeof dot === 'string' ? dot : dot?.import ?? dot?.default;
  }
  rel ??= pkg.main ?? 'index.js';
  const entry = resolve(dir, rel);
  if (!existsSync(entry)) throw pluginError(where, `entry ${entry} of ${dir} does not exist`);
  return entry;
}

let outsidePluginsHooked = false;

/**
 * Let plugins outside the llmed checkout import `@llmed/*`: the packages' exports (read from their
 * package.json files next to this one) are handed to a resolve hook that serves them when Node's own
 * resolution finds none (outside-plugins-hooks.mjs). Registered once per process.
 */
export function resolveLlmedPackagesForOutsidePlugins(): void {
  if (outsidePluginsHooked) return;
  outsidePluginsHooked = true;
  const packagesDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const packages: Record<string, string> = {};
  for (const entry of readdirSync(packagesDir, { withFileTypes: true })) {
    const pj = join(packagesDir, entry.name, 'package.json');
    if (!entry.isDirectory() || !existsSync(pj)) continue;
    const pkg = JSON.parse(readFileSync(pj, 'utf8')) as { name?: string; exports?: Record<string, string> | string };
    if (!pkg.name?.startsWith('@llmed/')) continue;
    const exportsMap = typeof pkg.exports === 'string' ? { '.': pkg.exports } : pkg.exports ?? {};
    for (const [sub, file] of Object.entries(exportsMap)) {
      const target = typeof file === 'string' ? resolve(packagesDir, entry.name, file) : '';
      if (!target || !existsSync(target)) continue;
      const real = realpathSync(target);
      packages[sub === '.' ? pkg.name : `${pkg.name}/${sub.replace(/^\.\//, '')}`] = pathToFileURL(real).href;
    }
  }
  register(new URL('./outside-plugins-hooks.mjs', import.meta.url), { data: { packages } });
}

/** Load every plugin package of the workspace into a fresh registry. */
export async function loadRegistry(ws: Workspace): Promise<Registry> {
  resolveLlmedPackagesForOutsidePlugins();
  const reg = new Registry();
  for (const { source, entry } of pluginEntries(ws)) {
    let mod: { default?: unknown };
    try {
      mod = await import(pathToFileURL(entry).href);
    } catch (e) {
      if (e instanceof LlmedError) throw e;
      throw pluginError(source, `failed to import ${entry}: ${(e as Error).message}`);
    }
    if (!(mod.default instanceof ContainerModule) && !moduleDescriptors(mod.default as ContainerModule)) {
      throw pluginError(source, 'default export must be the ContainerModule returned by pluginModule(descriptor)');
    }
    reg.load(mod.default as ContainerModule, source);
  }
  return reg;
}
