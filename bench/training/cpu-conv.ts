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
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { composeModel, loadExperimentConfig, loadRegistry, loadWorkspace } from '@llmed/core';
import { BRIDGE_PYTHON_ROOT, specImportPaths } from '@llmed/bridge';
import { prepareExperiment } from '../../packages/cli/src/prepare.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const steps = Number(process.argv[2] ?? 20);
const ws = loadWorkspace(root);
const registry = await loadRegistry(ws);
const tmp = mkdtempSync(join(tmpdir(), 'llmed-bench-conv-'));

interface Run { steps: number; train_s: number }
const results: Record<string, unknown>[] = [];
for (const experiment of ['demo', 'oasis-proxy']) {
  const configFile = join(root, 'configs', experiment, 'config.json');
  const config = loadExperimentConfig(configFile);
  const dataRoot = join(root, config.data.root);
  if (config.data.protocol !== 'synthetic-deformation' && !existsSync(dataRoot)) {
    console.log(`[bench] ${experiment}: ${dataRoot} is missing (${config.data.howToGet}); skipped`);
    continue;
  }
  config.train = { ...config.train, iterations: steps, validateEvery: 10 * steps, checkpointEvery: 10 * steps, timeBudgetMinutes: 0 };
  const spec = composeModel(config, configFile, registry, { workspaceRoot: root });
  const prepared = await prepareExperiment(ws, experiment, config);
  writeFileSync(join(tmp, 'spec.json'), JSON.stringify(spec));
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(config));
  const once = (cpuConv: string, tag: string): Run => {
    const r = spawnSync(join(root, '.venv/bin/python'), [join(root, 'bench/training/pure_python.py'), join(tmp, `${experiment}-${tag}`), join(tmp, 'spec.json'), join(tmp, 'config.json'), prepared.dir, BRIDGE_PYTHON_ROOT, JSON.stringify(specImportPaths(spec)), root, JSON.stringify({ cpuConv })], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Run;
  };
  const native = [once('native', 'n1')], onednn = [once('onednn', 'o1')];
  native.push(once('native', 'n2'));
  onednn.push(once('onednn', 'o2'));
  const mean = (rs: Run[]) => rs.reduce((s, r) => s + r.train_s, 0) / rs.length;
  results.push({ experiment, input: spec.input.spatial, steps, native: { runs: native, it_s: steps / mean(native) }, onednn: { runs: onednn, it_s: steps / mean(onednn) }, speedup: mean(native) / mean(onednn) });
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
