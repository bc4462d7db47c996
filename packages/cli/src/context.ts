/** Workspace, registry and experiment loading shared by the commands. */
import { composeModel, loadExperimentConfig, loadRegistry, loadWorkspace, resolveExperiment, type ExperimentConfig, type ModelSpec, type Registry, type Workspace } from '@llmed/core';

export interface Loaded { ws: Workspace; registry: Registry }

let cached: Promise<Loaded> | undefined;
export function loadContext(): Promise<Loaded> {
  cached ??= (async () => {
    const ws = loadWorkspace();
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
