/**
 * A tiny llmed workspace made from scratch, for end-to-end tests of hostile and broken inputs: its own
 * workspace.json (the repository's plugins), one LLM-free experiment `tiny` on a 16³ grid (the smallest the
 * encoder takes), and four blob "scans" with two labels each, written as NIfTI by llmed's own writer. One
 * training step on it takes a few seconds on a CPU, so the tests can train, export, resume and interrupt
 * real runs. Nothing is copied from elsewhere: every file is generated here.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeVolume, writeNifti } from '@llmed/imaging';
import { repoRoot } from './workspace.ts';

export const TINY_SHAPE: [number, number, number] = [16, 16, 16];

/** The `tiny` experiment's config (LLM-free LLaMA-Reg shape: dual pyramid → tokens → adapters → stages → decoder). */
export function tinyConfig(iterations = 2): Record<string, any> {
  return {
    name: 'tiny',
    method: 'custom',
    description: 'a tiny LLM-free registration model for the end-to-end tests',
    data: {
      protocol: 'pairs', root: 'data/tiny', manifest: 'pairs.json', title: 'four blobs (test data)', howToGet: 'made by test/helpers/tiny-workspace.ts',
      preprocess: { shape: TINY_SHAPE, orientation: 'RAS', moving: [{ op: 'minmax' }], fixed: [{ op: 'minmax' }] },
    },
    model: {
      input: { shape: TINY_SHAPE, channels: 1 },
      encoder: { use: 'dual-pyramid', with: { channels: [2, 4, 4, 8, 8] } },
      tokens: { use: 'tokens', with: { grid: [1, 1, 1], positionEmbedding: true } },
      block: [{ use: 'adapter0', with: { out: 16, hidden: 16 } }, { use: 'inner-mlp', with: { hidden: 16 } }],
      stageAdapters: { use: 'stage', with: { base: 16 } },
      decoder: { use: 'multiscale', with: { flowHidden: 4 } },
    },
    loss: [{ use: 'mse', weight: 1 }, { use: 'diffusion', weight: 0.01 }],
    train: { iterations, lr: 0.001, optimizer: 'adam', batchSize: 1, amp: false, seed: 0, validateEvery: 1000, checkpointEvery: 1000, timeBudgetMinutes: 0 },
    evaluate: { metrics: ['dice', 'jacobian-nonpositive'], pairs: 1 },
  };
}

/** A blob image (Gaussian) and its two-label map. */
function blob(centre: [number, number, number], radius: number) {
  const [nx, ny, nz] = TINY_SHAPE;
  const image = new Float32Array(nx * ny * nz);
  const labels = new Int16Array(nx * ny * nz);
  for (let k = 0, o = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, o++) {
    const r2 = ((i - centre[0]) ** 2 + (j - centre[1]) ** 2 + (k - centre[2]) ** 2) / radius ** 2;
    image[o] = Math.exp(-r2);
    labels[o] = r2 < 0.5 ? 1 : r2 < 1.5 ? 2 : 0;
  }
  return { image, labels };
}

export interface TinyWorkspace { root: string; configFile: string; dataDir: string }

/** Write the workspace into `root` (which must be empty or missing). */
export async function makeTinyWorkspace(root: string, opts: { iterations?: number } = {}): Promise<TinyWorkspace> {
  mkdirSync(join(root, 'configs', 'tiny'), { recursive: true });
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'llmed-tiny-workspace', private: true }));
  writeFileSync(join(root, 'workspace.json'), JSON.stringify({ experiments: { tiny: 'configs/tiny/config.json' }, plugins: [join(repoRoot, 'plugins') + '/*'] }, null, 2));
  symlinkSync(join(repoRoot, '.venv'), join(root, '.venv'));
  const configFile = join(root, 'configs', 'tiny', 'config.json');
  writeFileSync(configFile, JSON.stringify(tinyConfig(opts.iterations), null, 2));
  const dataDir = join(root, 'data', 'tiny');
  mkdirSync(dataDir, { recursive: true });
  const centres: [number, number, number][] = [[7, 8, 8], [8, 7, 9], [9, 9, 7], [8, 8, 8]];
  for (const [n, c] of centres.entries()) {
    const { image, labels } = blob(c, 3 + (n % 2));
    await writeNifti(join(dataDir, `s${n}.nii.gz`), makeVolume(image, TINY_SHAPE, { datatype: 'float32' }));
    await writeNifti(join(dataDir, `s${n}_labels.nii.gz`), makeVolume(labels, TINY_SHAPE, { datatype: 'int16', intent: 'LABEL' }));
  }
  const pairs = [[0, 1], [1, 2], [2, 3], [3, 0], [0, 2]].map(([m, f]) => ({ moving: `s${m}.nii.gz`, fixed: `s${f}.nii.gz`, movingLabels: `s${m}_labels.nii.gz`, fixedLabels: `s${f}_labels.nii.gz` }));
  writeFileSync(join(dataDir, 'pairs.json'), JSON.stringify(pairs, null, 2));
  return { root, configFile, dataDir };
}
