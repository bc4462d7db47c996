/**
 * Training benchmark (not a test): the demo experiment's training it/s and peak memory, and the bridge
 * overhead — the same N steps driven from TypeScript through pythonia (trainRun, polling) versus a plain
 * Python process running the same Trainer — as a ratio from one run. Writes
 * bench/results/training-bridge-overhead.json and .md.
 *
 *   npx tsx bench/training/bridge-overhead.ts [steps=40]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRegistry, loadWorkspace } from '@llmed/core';
import { trainRun } from '@llmed/bridge';
import { runPurePython, timedExperiment } from './pure-python.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const steps = Number(process.argv[2] ?? 40);
const ws = loadWorkspace(root);
const registry = await loadRegistry(ws);
const tmp = mkdtempSync(join(tmpdir(), 'llmed-bench-'));
// Long enough to measure, no validation or checkpoint inside the timed steps (both paths skip them alike).
const demo = await timedExperiment(ws, registry, 'demo', steps, tmp);
const { configFile, config, spec } = demo;

const pythonRun = (tag: string) => runPurePython(root, demo, join(tmp, tag));

async function bridgeRun(tag: string) {
  const t0 = Date.now();
  const res = await trainRun({ workspaceRoot: root, experiment: 'demo', configFile, config, spec, preparedDir: demo.preparedDir, runDir: join(tmp, tag), device: 'cpu', onProgress: () => {} });
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
