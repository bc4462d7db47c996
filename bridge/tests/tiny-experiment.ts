/**
 * The tiny registration experiment the bridge tests train: a prepared dataset of four blob "scans" in
 * the cache format, and a LLaMA-Reg-shaped model composed by @llmed/core from the real plugins with a
 * tiny LLaMA checkpoint built by transformers (shared by bridge.test.ts and distributed.test.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { composeModel, loadRegistry, loadWorkspace, validateExperiment, type ExperimentConfig, type ModelSpec } from '@llmed/core';
import { makeVolume, writePreparedVolume } from '@llmed/imaging';

export const WORKSPACE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const VENV_PYTHON = join(WORKSPACE, '.venv', 'bin', 'python');
const SHAPE: [number, number, number] = [32, 32, 16]; // nx, ny, nz

/** Write one prepared volume through imaging's own cache writer (1 mm RAS identity grid), the format data prepare writes. */
async function writeVolume(dir: string, name: string, data: Float32Array | Int32Array): Promise<void> {
  await writePreparedVolume(dir, name, makeVolume(data, SHAPE));
}

/** Four blob "scans" with two labels each; train on all ordered pairs of three, validate on the fourth. */
export async function writeTinyDataset(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const [nx, ny, nz] = SHAPE;
  const names: string[] = [];
  for (let s = 0; s < 4; s++) {
    const image = new Float32Array(nx * ny * nz);
    const labels = new Int32Array(nx * ny * nz);
    const [cx, cy, cz] = [nx / 2 + (s - 1.5) * 2, ny / 2 - (s - 1.5), nz / 2 + (s % 2)];
    for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
      const r2 = ((i - cx) / (nx / 4)) ** 2 + ((j - cy) / (ny / 4)) ** 2 + ((k - cz) / (nz / 4)) ** 2;
      const idx = i + nx * (j + ny * k);
      image[idx] = Math.exp(-r2);
      labels[idx] = r2 < 0.5 ? 1 : r2 < 1.5 ? 2 : 0;
    }
    const name = `scan${s}`;
    await writeVolume(dir, name, image);
    await writeVolume(dir, `${name}_labels`, labels);
    names.push(name);
  }
  const pair = (m: string, f: string) => ({ moving: m, fixed: f, movingLabels: `${m}_labels`, fixedLabels: `${f}_labels` });
  const train = names.slice(0, 3).flatMap((m) => names.slice(0, 3).filter((f) => f !== m).map((f) => pair(m, f)));
  const val = [pair(names[3], names[0])];
  writeFileSync(join(dir, 'pairs.json'), JSON.stringify({ title: 'bridge test blobs', shape: SHAPE, labels: [1, 2], train, val, test: val }));
  return dir;
}

export function tinyConfig(llmCheckpoint: string, train: Partial<ExperimentConfig['train']> = {}): unknown {
  return {
    name: 'bridge-test',
    method: 'LLaMA-Reg',
    description: 'tiny LLaMA-Reg-shaped model for the bridge tests',
    data: {
      protocol: 'pairs', root: '.', title: 'bridge test blobs', howToGet: 'written by the test',
      preprocess: { shape: SHAPE, moving: [], fixed: [] },
    },
    model: {
      input: { shape: SHAPE, channels: 1 },
      encoder: { use: 'dual-pyramid', with: { channels: [4, 4, 8, 8, 8] } },
      tokens: { use: 'tokens', with: { positionEmbedding: true } },
      block: [
        { use: 'adapter0', with: { out: 64, hidden: 32 } },
        { use: 'llama3', name: 'llm', with: { checkpoint: llmCheckpoint, layers: [1], hiddenSize: 64, numLayers: 2, finalNorm: 'ones' } },
        { use: 'inner-mlp', with: { hidden: 32 } },
        { use: 'llama3', share: 'llm' },
      ],
      stageAdapters: { use: 'stage', with: { base: 16 } },
      decoder: { use: 'multiscale', with: { flowHidden: 4 } },
    },
    loss: [
      { use: 'mse', weight: 1, with: { scaleWeights: [0.25, 0.5, 1] } },
      { use: 'diffusion', weight: 0.04, with: { scaleWeights: [0.25, 0.5, 1] } },
      { use: 'dice-loss', weight: 0.1 },
    ],
    train: { iterations: 2, lr: 1e-3, seed: 1, validateEvery: 1, checkpointEvery: 1, ...train },
    evaluate: { metrics: ['dice'] },
  };
}

export function logEvents(runDir: string): { event: string; [k: string]: unknown }[] {
  return readFileSync(join(runDir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

/** Build the tiny LLaMA checkpoint under `tmp`, write the dataset, and compose the experiment. */
export async function tinyExperiment(tmp: string, train: Partial<ExperimentConfig['train']> = {}): Promise<{ prepared: string; config: ExperimentConfig; spec: ModelSpec; configFile: string }> {
  const prepared = await writeTinyDataset(join(tmp, 'prepared'));
  const llm = join(tmp, 'tiny-llama');
  const built = spawnSync(VENV_PYTHON, ['-m', 'tests.fixtures', 'llama', llm, '--hidden', '64', '--layers', '2'], { cwd: join(WORKSPACE, 'bridge', 'python'), encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`could not build the tiny LLaMA checkpoint: ${built.stderr}`);
  const registry = await loadRegistry(loadWorkspace(WORKSPACE));
  const configFile = join(tmp, 'config.json');
  const config = validateExperiment(tinyConfig(llm, train), configFile);
  const spec = composeModel(config, configFile, registry, { workspaceRoot: WORKSPACE });
  return { prepared, config, spec, configFile };
}
