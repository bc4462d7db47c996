/**
 * Training benchmark (not a test): the demo experiment's training it/s and peak memory, and the bridge
 * overhead — the same N steps driven from TypeScript through pythonia (trainRun, polling) versus a plain
 * Python process running the same Trainer — as a ratio from one run. Writes
 * bench/results/training-bridge-overhead.json and .md.
 *
 *   npx tsx bench/training/bridge-overhead.ts [steps=40]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { composeModel, loadExperimentConfig, loadRegistry, loadWorkspace } from '@llmed/core';
import { BRIDGE_PYTHON_ROOT, specImportPaths, trainRun } from '@llmed/bridge';
import { prepareExperiment } from '../../packages/cli/src/prepare.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const steps = Number(process.argv[2] ?? 40);
const ws = loadWorkspace(root);
const registry = await loadRegistry(ws);
const configFile = join(root, 'configs/demo/config.json');
const config = loadExperimentConfig(configFile);
// Long enough to measure, no validation or checkpoint inside the timed steps (both paths skip them alike).
config.train = { ...config.train, iterations: steps, validateEvery: 10 * steps, checkpointEvery: 10 * steps, timeBudgetMinutes: 0 };
const spec = composeModel(config, configFile, registry, { workspaceRoot: root });
const prepared = await prepareExperiment(ws, 'demo', config);
const tmp = mkdtempSync(join(tmpdir(), 'llmed-bench-'));
const specPath = join(tmp, 'spec.json');
const configPath = join(tmp, 'config.json');
writeFileSync(specPath, JSON.stringify(spec));
writeFileSync(configPath, JSON.stringify(config));

function pythonRun(tag: string) {
  const r = spawnSync(join(root, '.venv/bin/python'), [join(root, 'bench/training/pure_python.py'), join(tmp, tag), specPath, configPath, prepared.dir, BRIDGE_PYTHON_ROOT, JSON.stringify(specImportPaths(spec)), root], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { steps: number; wall_s: number; train_s: number; peak_rss_mb: number };
}

async function bridgeRun(tag: string) {
  const t0 = Date.now();
  const res = await trainRun({ workspaceRoot: root, experiment: 'demo', configFile, config, spec, preparedDir: prepared.dir, runDir: join(tmp, tag), device: 'cpu', onProgress: () => {} });
  const log = readFileSync(join(tmp, tag, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const done = log.find((e) => e.event === 'done');
  return { steps: res.step, wall_s: (Date.now() - t0) / 1000, train_s: res.elapsed_s, peak_rss_mb: done?.peak_rss_mb ?? null };
}

// Interleave (python, bridge, python, bridge) so drift in machine load hits both sides alike.
const py1 = pythonRun('py1');
const br1 = await bridgeRun('br1');
const py2 = pythonRun('py2');
const br2 = await bridgeRun('br2');
const pyTrain = (py1.train_s + py2.train_s) / 2;
const brTrain = (br1.train_s + br2.train_s) / 2;
const result = {
  date: new Date().toISOString(),
  machine: `${(await import('node:os')).cpus().length} cores`,
  experiment: 'demo',
  input: spec.input.spatial,
  steps,
  python: { runs: [py1, py2], it_s: steps / pyTrain },
  bridge: { runs: [br1, br2], it_s: steps / brTrain },
  overhead_ratio: brTrain / pyTrain,
  note: 'train_s is the Trainer\'s own elapsed time (model build and data open included, process start excluded); overhead_ratio = bridge / pure Python train_s (target < 1.02). wall_s of the bridge also includes spawning Python and importing torch (about 1-2 s once per run), which the pure-Python side pays before its clock starts.',
};
const out = join(root, 'bench/results/training-bridge-overhead');
writeFileSync(`${out}.json`, `${JSON.stringify(result, null, 2)}\n`);
writeFileSync(`${out}.md`, `# Training: bridge overhead (demo, ${spec.input.spatial.join('×')}, ${steps} steps, CPU)\n\n| path | it/s | peak RSS (MB) |\n| --- | --- | --- |\n| pure Python Trainer | ${result.python.it_s.toFixed(3)} | ${Math.max(py1.peak_rss_mb, py2.peak_rss_mb).toFixed(0)} |\n| TypeScript → pythonia → Trainer | ${result.bridge.it_s.toFixed(3)} | ${br1.peak_rss_mb ?? 'n/a'} |\n\nbridge / Python time ratio: **${result.overhead_ratio.toFixed(4)}** (target < 1.02). ${result.date}\n`);
console.log(JSON.stringify(result, null, 2));
rmSync(tmp, { recursive: true, force: true });
