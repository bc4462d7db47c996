/** Workspace, registry and experiment loading shared by the commands. */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { composeModel, findWorkspaceRoot, isLlmedError, loadExperimentConfig, loadRegistry, loadWorkspace, resolveExperiment, type ExperimentConfig, type ModelSpec, type Registry, type Workspace } from '@llmed/core';

/** The workspace this CLI was installed in (packages/cli/src → the root). */
const OWN_WORKSPACE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/**
 * The workspace of the current folder, else the one the CLI belongs to: `llmed register` and
 * `llmed view` are run on files anywhere, and still need the plugin registry (Metric plugins).
 */
function workspaceRoot(): string {
  try {
    return findWorkspaceRoot();
  } catch (e) {
    if (isLlmedError(e) && !process.env.LLMED_WORKSPACE) return findWorkspaceRoot(OWN_WORKSPACE);
    throw e;
  }
}

export interface Loaded { ws: Workspace; registry: Registry }

let cached: Promise<Loaded> | undefined;
export function loadContext(): Promise<Loaded> {
  cached ??= (async () => {
    const ws = loadWorkspace(workspaceRoot());
    return { ws, registry: await loadRegistry(ws) };
  })();
  return cached;
}

export interface Experiment { name: string; configFile: string; config: ExperimentConfig; spec: ModelSpec }

/** Resolve, validate and compose an experiment (name or config path). */
export async function loadExperiment(nameOrPath: string): Promise<Loaded & Experiment> {
  const ctx = await loadContext();
  const { name, configFile } = resolveExperiment(ctx.ws, nameOrPath);
  const config = loadExperimentConfig(configFile);
  const spec = composeModel(config, configFile, ctx.registry, { workspaceRoot: ctx.ws.root });
  return { ...ctx, name, configFile, config, spec };
}
