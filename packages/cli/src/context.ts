/** Workspace, registry and experiment loading shared by the commands. */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { composeModel, composeReportModel, findWorkspaceRoot, isLlmedError, isReportConfig, LlmedError, loadExperimentConfig, loadRegistry, loadWorkspace, readJsonFile, resolveExperiment, validateExperiment, validateReportExperiment, type ExperimentConfig, type ModelSpec, type Registry, type ReportExperimentConfig, type ReportModelSpec, type Workspace } from '@llmed/core';

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

export interface ReportExperiment { task: 'report'; name: string; configFile: string; config: ReportExperimentConfig; spec: ReportModelSpec }

/** Resolve, validate and compose an experiment of either task (`"task": "report"` or registration). */
export async function loadAnyExperiment(nameOrPath: string): Promise<Loaded & ((Experiment & { task: 'registration' }) | ReportExperiment)> {
  const ctx = await loadContext();
  const { name, configFile } = resolveExperiment(ctx.ws, nameOrPath);
  const raw = readJsonFile(configFile);
  if (isReportConfig(raw)) {
    const config = validateReportExperiment(raw, configFile);
    return { ...ctx, task: 'report', name, configFile, config, spec: composeReportModel(config, configFile, ctx.registry, { workspaceRoot: ctx.ws.root }) };
  }
  const config = validateExperiment(raw, configFile);
  return { ...ctx, task: 'registration', name, configFile, config, spec: composeModel(config, configFile, ctx.registry, { workspaceRoot: ctx.ws.root }) };
}

/** Resolve, validate and compose a registration experiment (name or config path). */
export async function loadExperiment(nameOrPath: string): Promise<Loaded & Experiment> {
  const ctx = await loadContext();
  const { name, configFile } = resolveExperiment(ctx.ws, nameOrPath);
  if (isReportConfig(readJsonFile(configFile))) {
    throw new LlmedError('usage', `'${name}' is a report-generation experiment; this command works on registration experiments`, { where: configFile, hint: 'llmed config check and llmed train take report experiments' });
  }
  const config = loadExperimentConfig(configFile);
  const spec = composeModel(config, configFile, ctx.registry, { workspaceRoot: ctx.ws.root });
  return { ...ctx, name, configFile, config, spec };
}
