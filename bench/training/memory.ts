/**
 * Memory per GPU (per DDP rank) of the paper-scale experiments (not a test): knee and brain-oasis
 * (LLaMA-Reg, one LLaMA-2-7B layer applied twice), abdomen-mrct and srreg (LLM-Morph, two LLaMA-3-8B
 * layers with LoRA). The LLM layers are built with `init: "random"` (same architecture and size, no
 * checkpoint needed), every cascade step trainable at once (an upper bound of the step-by-step phases),
 * batch 1 per rank, two steps of the real Trainer on a synthetic pair (bench/training/memory_step.py).
 *
 * - `--device cuda`: measured at the paper grid — torch.cuda.max_memory_allocated with the run's AMP.
 * - on CPU (no GPU): fp32 peak RSS at two reduced grids (multiples of the 16-voxel token cell; the larger
 *   at half the paper grid per axis, or smaller where that would exceed ~1 M prepared voxels), fitted as
 *   a + b·voxels and extrapolated to the paper grid. Activations grow linearly with the voxels; `a` holds
 *   the weights, gradients and Adam states. fp32 and the CPU allocator: an upper-side estimate of a GPU
 *   rank (AMP keeps most activations in bf16/fp16). DDP adds one gradient bucket copy of the trainable
 *   parameters (4 bytes each), listed separately.
 *
 *   npx tsx bench/training/memory.ts [--device cuda] [experiments...]
 *
 * Writes bench/results/training-memory.json and .md after each experiment, keeping the rows of other
 * experiments measured earlier on the same device (so they can be run one at a time).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { composeModel, loadExperimentConfig, loadRegistry, loadWorkspace, type ExperimentConfig } from '@llmed/core';
import { BRIDGE_PYTHON_ROOT } from '@llmed/bridge';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const device = args.includes('--device') ? args[args.indexOf('--device') + 1] : 'cpu';
const named = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--device');
const experiments = named.length ? named : ['knee', 'brain-oasis', 'abdomen-mrct', 'srreg'];
const ws = loadWorkspace(root);
const registry = await loadRegistry(ws);
const tmp = mkdtempSync(join(tmpdir(), 'llmed-bench-memory-'));

/**
 * The architecture (config.json) of the papers' LLMs, from their Hugging Face model cards: with
 * `init: "random"` the backbone reads only this file, so the layers have the real size without weights.
 */
const ARCHITECTURES: Record<string, Record<string, unknown>> = {
  llama2: { model_type: 'llama', hidden_size: 4096, intermediate_size: 11008, num_attention_heads: 32, num_key_value_heads: 32, num_hidden_layers: 32, rms_norm_eps: 1e-5, vocab_size: 32000, max_position_embeddings: 4096, rope_theta: 10000 },
  llama3: { model_type: 'llama', hidden_size: 4096, intermediate_size: 14336, num_attention_heads: 32, num_key_value_heads: 8, num_hidden_layers: 32, rms_norm_eps: 1e-5, vocab_size: 128256, max_position_embeddings: 8192, rope_theta: 500000 },
};
for (const [id, arch] of Object.entries(ARCHITECTURES)) {
  mkdirSync(join(tmp, `arch-${id}`), { recursive: true });
  writeFileSync(join(tmp, `arch-${id}`, 'config.json'), JSON.stringify(arch));
}

interface Step { peak_rss_mb: number; peak_cuda_mb: number | null; frozen: number; frozen_mb: number; trainable: number; amp: string | null }

/** The experiment at `factor` of its grid per axis (token cells of 16 voxels kept whole), LLM layers random. */
function scaled(base: ExperimentConfig, factor: number): ExperimentConfig {
  const c = structuredClone(base) as ExperimentConfig & { model: any; data: any };
  const input = c.model.input.shape as number[];
  const cells = input.map((n) => Math.max(1, Math.round((n / 16) * factor)));
  const shape = cells.map((k) => 16 * k);
  const ratio = (c.data.preprocess.shape as number[]).map((n, i) => n / input[i]);
  c.model.input.shape = shape;
  c.data.preprocess.shape = shape.map((n, i) => Math.round(n * ratio[i]));
  if (c.model.tokens?.with?.grid) c.model.tokens.with.grid = cells;
  for (const b of c.model.block) {
    if (!b.with?.checkpoint) continue;
    if (!ARCHITECTURES[b.use]) throw new Error(`${b.use}: no architecture known to this benchmark`);
    b.with.init = 'random';
    b.with.checkpoint = join(tmp, `arch-${b.use}`);
  }
  c.train = { ...c.train, iterations: 2, validateEvery: 1000, checkpointEvery: 1000, timeBudgetMinutes: 0, cascade: undefined } as ExperimentConfig['train'];
  delete (c.train as { cascade?: unknown }).cascade;
  return c;
}

function step(experiment: string, config: ExperimentConfig, tag: string): Step & { voxels: number; shape: number[] } {
  const file = join(root, 'configs', experiment, 'config.json');
  const spec = composeModel(config, file, registry, { workspaceRoot: root });
  const dir = join(tmp, `${experiment}-${tag}`);
  const specPath = join(tmp, `${experiment}-${tag}-spec.json`);
  const configPath = join(tmp, `${experiment}-${tag}-config.json`);
  writeFileSync(specPath, JSON.stringify(spec));
  writeFileSync(configPath, JSON.stringify(config));
  const r = spawnSync(join(root, '.venv/bin/python'), [join(root, 'bench/training/memory_step.py'), specPath, configPath, dir, device, root], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: BRIDGE_PYTHON_ROOT } });
  if (r.status !== 0) throw new Error(`${experiment} ${tag}: ${r.stderr.slice(-2000)}`);
  rmSync(dir, { recursive: true, force: true });
  const prepared = (config as any).data.preprocess.shape as number[];
  return { ...(JSON.parse(r.stdout.trim().split('\n').pop()!) as Step), voxels: prepared.reduce((a, b) => a * b, 1), shape: prepared };
}

/** The larger of the two CPU grids: half the paper grid per axis, less where that exceeds ~1 M voxels. */
function cpuFactor(base: ExperimentConfig): number {
  const voxels = (base.data.preprocess.shape as number[]).reduce((a, b) => a * b, 1);
  return Math.min(0.5, Math.cbrt(1e6 / voxels));
}

const gb = (mb: number) => (mb / 1024).toFixed(1);
const machine = `${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB`;
const out = join(root, 'bench/results/training-memory');
const earlier = existsSync(`${out}.json`) ? JSON.parse(readFileSync(`${out}.json`, 'utf8')) : null;
const rows: Record<string, any>[] = earlier?.device === device ? earlier.rows : [];

function write(): void {
  writeFileSync(`${out}.json`, `${JSON.stringify({ device, machine, date: new Date().toISOString(), rows }, null, 2)}\n`);
  const lines = [
    `# Training memory per GPU (DDP rank, batch 1) of the paper-scale experiments`, '',
    `${device === 'cuda' ? 'Measured on the GPU at the paper grid (max allocated, AMP as configured).' : 'No GPU: fp32 peak RSS on the CPU at two reduced grids, extrapolated linearly in voxels to the paper grid (see bench/training/memory.ts); an upper-side estimate for a GPU rank with AMP.'} LLM layers random-initialised (same size), every cascade step trainable at once. ${machine}; ${new Date().toISOString()}.`, '',
    '| experiment | grid | frozen LLM weights | trainable parameters | + DDP gradient buckets | memory per rank |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.experiment} | ${r.grid.join('×')} | ${(r.frozen / 1e6).toFixed(0)} M (${gb(r.frozen_mb)} GB) | ${(r.trainable / 1e6).toFixed(1)} M | ${gb(r.ddp_buckets_mb)} GB | **${gb(r.gpu_mb)} GB**${r.mb_per_megavoxel ? ` (${gb(r.fixed_mb)} GB + ${gb(r.mb_per_megavoxel)} GB per megavoxel)` : ''} |`),
  ];
  writeFileSync(`${out}.md`, `${lines.join('\n')}\n`);
  console.log(lines.join('\n'));
}

for (const experiment of experiments) {
  const base = loadExperimentConfig(join(root, 'configs', experiment, 'config.json'));
  const fullShape = base.data.preprocess.shape as number[];
  const fullVoxels = fullShape.reduce((a, b) => a * b, 1);
  if (device === 'cuda') {
    const s = step(experiment, scaled(base, 1), 'full');
    rows.push({ experiment, grid: fullShape, measured: 'cuda, paper grid', ...s, gpu_mb: s.peak_cuda_mb, ddp_buckets_mb: (4 * s.trainable) / 2 ** 20 });
  } else {
    const factor = cpuFactor(base);
    const small = step(experiment, scaled(base, factor / 2), 'quarter');
    const half = step(experiment, scaled(base, factor), 'half');
    const b = (half.peak_rss_mb - small.peak_rss_mb) / (half.voxels - small.voxels);
    const a = half.peak_rss_mb - b * half.voxels;
    rows.push({ experiment, grid: fullShape, measured: `cpu fp32 at ${small.shape.join('×')} and ${half.shape.join('×')}, extrapolated`, small, half, mb_per_megavoxel: b * 1e6, fixed_mb: a, gpu_mb: a + b * fullVoxels, frozen: half.frozen, frozen_mb: half.frozen_mb, trainable: half.trainable, ddp_buckets_mb: (4 * half.trainable) / 2 ** 20 });
  }
  console.log(JSON.stringify(rows.at(-1)));
  const at = rows.findIndex((r) => r.experiment === experiment);
  const row = rows.pop()!;
  if (at >= 0 && at < rows.length) rows[at] = row;
  else rows.push(row);
  write();
}
rmSync(tmp, { recursive: true, force: true });
