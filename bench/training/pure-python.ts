/**
 * What the training benchmarks share: an experiment set up for N timed steps (no validation or checkpoint
 * inside them, no time budget) with its data prepared, and one run of the same Trainer in a plain Python
 * process (bench/training/pure_python.py) — the reference each benchmark compares against.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { composeModel, loadExperimentConfig, type loadRegistry, type Workspace } from '@llmed/core';
import { BRIDGE_PYTHON_ROOT, specImportPaths } from '@llmed/bridge';
import { prepareExperiment } from '@llmed/data';

export interface TimedExperiment {
  experiment: string;
  configFile: string;
  config: ReturnType<typeof loadExperimentConfig>;
  spec: ReturnType<typeof composeModel>;
  preparedDir: string;
  /** spec.json and config.json as the Python side reads them. */
  specPath: string;
  configPath: string;
}

export async function timedExperiment(ws: Workspace, registry: Awaited<ReturnType<typeof loadRegistry>>, experiment: string, steps: number, tmp: string): Promise<TimedExperiment> {
  const configFile = join(ws.root, 'configs', experiment, 'config.json');
  const config = loadExperimentConfig(configFile);
  config.train = { ...config.train, iterations: steps, validateEvery: 10 * steps, checkpointEvery: 10 * steps, timeBudgetMinutes: 0 };
  const spec = composeModel(config, configFile, registry, { workspaceRoot: ws.root });
  const prepared = await prepareExperiment(ws, experiment, config);
  const specPath = join(tmp, `${experiment}-spec.json`);
  const configPath = join(tmp, `${experiment}-config.json`);
  writeFileSync(specPath, JSON.stringify(spec));
  writeFileSync(configPath, JSON.stringify(config));
  return { experiment, configFile, config, spec, preparedDir: prepared.dir, specPath, configPath };
}

export interface PythonRun { state: string; steps: number; wall_s: number; train_s: number; peak_rss_mb: number }

/** The Trainer in a plain Python process, into `runDir`, with extra Trainer options. */
export function runPurePython(root: string, e: TimedExperiment, runDir: string, options: Record<string, unknown> = {}): PythonRun {
  const r = spawnSync(join(root, '.venv/bin/python'), [join(root, 'bench/training/pure_python.py'), runDir, e.specPath, e.configPath, e.preparedDir, BRIDGE_PYTHON_ROOT, JSON.stringify(specImportPaths(e.spec)), root, JSON.stringify(options)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as PythonRun;
}
