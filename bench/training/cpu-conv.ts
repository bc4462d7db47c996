/**
 * CPU training benchmark (not a test): the same training steps with PyTorch's own choice of 3-D
 * convolution kernel (`cpuConv: "native"`: batch-1 convolutions below its oneDNN size threshold run
 * aten::slow_conv3d) versus every convolution routed to oneDNN (`"onednn"`, the default; see
 * llmed.nn.use_onednn_conv3d), on the demo and on the 64³ OASIS-proxy model. Runs alternate
 * (native, oneDNN, native, oneDNN) so load drift hits both alike; the result is a ratio. Writes
 * bench/results/training-cpu-conv.json and .md.
 *
 *   npx tsx bench/training/cpu-conv.ts [steps=20]
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadExperimentConfig, loadRegistry, loadWorkspace } from '@llmed/core';
import { runPurePython, timedExperiment, type PythonRun } from './pure-python.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const steps = Number(process.argv[2] ?? 20);
const ws = loadWorkspace(root);
const registry = await loadRegistry(ws);
const tmp = mkdtempSync(join(tmpdir(), 'llmed-bench-conv-'));

const results: Record<string, unknown>[] = [];
for (const experiment of ['demo', 'oasis-proxy']) {
  const data = loadExperimentConfig(join(root, 'configs', experiment, 'config.json')).data;
  if (data.protocol !== 'synthetic-deformation' && !existsSync(join(root, data.root))) {
    console.log(`[bench] ${experiment}: ${join(root, data.root)} is missing (${data.howToGet}); skipped`);
    continue;
  }
  const e = await timedExperiment(ws, registry, experiment, steps, tmp);
  const once = (cpuConv: string, tag: string) => runPurePython(root, e, join(tmp, `${experiment}-${tag}`), { cpuConv });
  const native = [once('native', 'n1')], onednn = [once('onednn', 'o1')];
  native.push(once('native', 'n2'));
  onednn.push(once('onednn', 'o2'));
  const mean = (rs: PythonRun[]) => rs.reduce((s, r) => s + r.train_s, 0) / rs.length;
  results.push({ experiment, input: e.spec.input.spatial, steps, native: { runs: native, it_s: steps / mean(native) }, onednn: { runs: onednn, it_s: steps / mean(onednn) }, speedup: mean(native) / mean(onednn) });
  console.log(JSON.stringify(results[results.length - 1]));
}
const out = join(root, 'bench/results/training-cpu-conv');
const date = new Date().toISOString();
writeFileSync(`${out}.json`, `${JSON.stringify({ date, machine: `${cpus().length} cores`, results, note: 'train_s is the Trainer\'s elapsed time for the same steps (model build and data open included); speedup = native / oneDNN time.' }, null, 2)}\n`);
writeFileSync(`${out}.md`, [
  `# Training on CPU: PyTorch's conv3d choice vs all convolutions on oneDNN (${steps} steps, ${cpus().length} cores, ${date})`,
  '',
  '| experiment | input | native it/s | oneDNN it/s | speedup |',
  '| --- | --- | --- | --- | --- |',
  ...results.map((r: any) => `| ${r.experiment} | ${r.input.join('×')} | ${r.native.it_s.toFixed(3)} | ${r.onednn.it_s.toFixed(3)} | **${r.speedup.toFixed(2)}×** |`),
  '',
].join('\n'));
rmSync(tmp, { recursive: true, force: true });
