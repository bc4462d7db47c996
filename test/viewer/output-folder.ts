/**
 * Test fixtures for the viewer: output folders laid out as `llmed register` / `llmed evaluate` write them.
 *
 * `writeBrainOutput` builds one from real anatomy (Colin27 `ch2bet` + the AAL atlas from Debian's
 * mricron-data): moving = fixed translated by a few voxels; the "registration" is that translation plus
 * a smooth random deformation, so warped is close to fixed but not equal, and det J varies around 1
 * (blue and red in the overlay) the way a real result does.
 *
 * `writeTinyOutput` writes small synthetic volumes (no external data), for server tests.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  makeVolume,
  readNifti,
  resampleToShape,
  smoothRandomField,
  voxelCount,
  warpNearest,
  warpTrilinear,
  withData,
  writeDisplacementField,
  writeNifti,
  type Volume,
} from '@llmed/imaging';

/**
 * det(I + ∇u) per voxel for a displacement field u in voxels (component-major, i fastest): central
 * differences inside, one-sided at the borders.
 */
export function jacobianDeterminant(field: Float32Array, dims: readonly number[]): Float32Array {
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  const out = new Float32Array(n);
  const strides = [1, nx, nx * ny];
  const sizes = [nx, ny, nz];
  const d = (c: number, q: number, axis: number, pos: number) => {
    const lo = pos > 0 ? q - strides[axis] : q;
    const hi = pos < sizes[axis] - 1 ? q + strides[axis] : q;
    const span = (pos < sizes[axis] - 1 ? 1 : 0) + (pos > 0 ? 1 : 0);
    return span === 0 ? 0 : (field[c * n + hi] - field[c * n + lo]) / span;
  };
  for (let k = 0, q = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, q++) {
        const p = [i, j, k];
        // J[c][a] = δ_ca + ∂u_c/∂x_a
        const J = [0, 1, 2].map((c) => [0, 1, 2].map((a) => (c === a ? 1 : 0) + d(c, q, a, p[a])));
        out[q] =
          J[0][0] * (J[1][1] * J[2][2] - J[1][2] * J[2][1]) -
          J[0][1] * (J[1][0] * J[2][2] - J[1][2] * J[2][0]) +
          J[0][2] * (J[1][0] * J[2][1] - J[1][1] * J[2][0]);
      }
    }
  }
  return out;
}

/** Dice overlap per label present in either map, and its mean. */
export function diceByLabel(a: ArrayLike<number>, b: ArrayLike<number>): { mean: number; perLabel: Record<string, number> } {
  const inA = new Map<number, number>();
  const inB = new Map<number, number>();
  const both = new Map<number, number>();
  for (let q = 0; q < a.length; q++) {
    const la = a[q];
    const lb = b[q];
    if (la > 0) inA.set(la, (inA.get(la) ?? 0) + 1);
    if (lb > 0) inB.set(lb, (inB.get(lb) ?? 0) + 1);
    if (la > 0 && la === lb) both.set(la, (both.get(la) ?? 0) + 1);
  }
  const labels = [...new Set([...inA.keys(), ...inB.keys()])].sort((x, y) => x - y);
  const perLabel: Record<string, number> = {};
  for (const l of labels) perLabel[String(l)] = (2 * (both.get(l) ?? 0)) / ((inA.get(l) ?? 0) + (inB.get(l) ?? 0));
  const values = Object.values(perLabel);
  return { mean: values.reduce((s, v) => s + v, 0) / Math.max(1, values.length), perLabel };
}

/** A constant field: every voxel displaced by `shift` voxels. */
function constantField(dims: readonly number[], shift: readonly number[]): Float32Array {
  const n = voxelCount({ dims });
  const f = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) f.fill(shift[c], c * n, (c + 1) * n);
  return f;
}

export interface BrainOutputOptions {
  /** Grid of the output volumes (default 64×80×64: small enough for SwiftShader, large enough to see anatomy). */
  shape?: readonly [number, number, number];
  /** Translation of moving relative to fixed, in voxels. */
  shift?: readonly [number, number, number];
  /** Largest residual (non-rigid) displacement in voxels; 0 gives det J = 1 everywhere. */
  residual?: number;
  seed?: number;
}

/**
 * Write a complete output folder into `dir` from the mricron templates in `templates`: fixed, moving,
 * warped (+ their label maps), field (DISPVECT, mm), jacobian (det J) and metrics.json.
 */
export async function writeBrainOutput(dir: string, templates: string, opts: BrainOutputOptions = {}): Promise<{ dims: readonly number[]; diceMean: number }> {
  const shape = opts.shape ?? [64, 80, 64];
  const shift = opts.shift ?? [5, -4, 3];
  mkdirSync(dir, { recursive: true });

  const fixed = resampleToShape(await readNifti(join(templates, 'ch2bet.nii.gz')), shape, 'linear');
  const fixedLabels = resampleToShape(await readNifti(join(templates, 'aal.nii.gz')), shape, 'nearest');
  const dims = fixed.dims;
  // readNifti gives float32 data; labels go back to integers for nearest-neighbour warping and writing.
  const fixedLabelData = Int16Array.from(fixedLabels.data);

  // moving(x) = fixed(x - shift): sample fixed at x + (-shift).
  const toMoving = constantField(dims, shift.map((s) => -s));
  const moving = withData(fixed, warpTrilinear(fixed.data, dims, toMoving, dims));
  const movingLabels = withData(fixedLabels, warpNearest(fixedLabelData, dims, toMoving, dims), { datatype: 'int16' });

  // The "registration": the inverse translation plus a smooth residual, as a network would leave it.
  const field = constantField(dims, shift);
  const residual = smoothRandomField(dims, { maxDisplacement: opts.residual ?? 2, smoothness: 8, seed: opts.seed ?? 11 });
  for (let q = 0; q < field.length; q++) field[q] += residual[q];
  const warped = withData(fixed, warpTrilinear(moving.data, dims, field, dims));
  const warpedLabelData = warpNearest(movingLabels.data as Int16Array, dims, field, dims);
  const warpedLabels = withData(fixedLabels, warpedLabelData, { datatype: 'int16' });
  const detJ = jacobianDeterminant(field, dims);
  const jacobian: Volume = makeVolume(detJ, dims, { affine: fixed.affine, datatype: 'float32', description: 'det J of the displacement field' });

  await writeNifti(join(dir, 'fixed.nii.gz'), fixed, { datatype: 'float32' });
  await writeNifti(join(dir, 'moving.nii.gz'), moving, { datatype: 'float32' });
  await writeNifti(join(dir, 'warped.nii.gz'), warped, { datatype: 'float32' });
  await writeNifti(join(dir, 'fixed_labels.nii.gz'), withData(fixedLabels, fixedLabelData, { datatype: 'int16' }), { datatype: 'int16', intent: 'LABEL' });
  await writeNifti(join(dir, 'moving_labels.nii.gz'), movingLabels, { datatype: 'int16', intent: 'LABEL' });
  await writeNifti(join(dir, 'warped_labels.nii.gz'), warpedLabels, { datatype: 'int16', intent: 'LABEL' });
  await writeNifti(join(dir, 'jacobian.nii.gz'), jacobian, { datatype: 'float32' });
  await writeDisplacementField(join(dir, 'field.nii.gz'), field, fixed);

  const before = diceByLabel(fixedLabelData, movingLabels.data as Int16Array);
  const after = diceByLabel(fixedLabelData, warpedLabelData);
  let folding = 0;
  let minJ = Infinity;
  let maxJ = -Infinity;
  for (const v of detJ) {
    if (v <= 0) folding++;
    minJ = Math.min(minJ, v);
    maxJ = Math.max(maxJ, v);
  }
  const metrics = {
    pair: 'colin27-shifted',
    dice_mean: after.mean,
    dice_mean_before: before.mean,
    jacobian: { min: minJ, max: maxJ, folding_fraction: folding / detJ.length },
    dice_per_label: after.perLabel,
  };
  writeFileSync(join(dir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  return { dims, diceMean: after.mean };
}

/** A small synthetic output folder (a bright box in noise-free background): no external data needed. */
export async function writeTinyOutput(dir: string, opts: { jacobian?: boolean; metrics?: string } = {}): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const dims = [12, 10, 8] as const;
  const box = (offset: number) => {
    const data = new Float32Array(dims[0] * dims[1] * dims[2]);
    for (let k = 2; k < 6; k++) for (let j = 2 + offset; j < 7 + offset; j++) for (let i = 3; i < 9; i++) data[i + dims[0] * (j + dims[1] * k)] = 100 + i + j + k;
    return makeVolume(data, dims, { spacing: [2, 2, 2] });
  };
  await writeNifti(join(dir, 'fixed.nii.gz'), box(0));
  await writeNifti(join(dir, 'moving.nii.gz'), box(1));
  await writeNifti(join(dir, 'warped.nii.gz'), box(0));
  if (opts.jacobian) await writeNifti(join(dir, 'jacobian.nii.gz'), makeVolume(new Float32Array(dims[0] * dims[1] * dims[2]).fill(1), dims, { spacing: [2, 2, 2] }));
  if (opts.metrics !== undefined) writeFileSync(join(dir, 'metrics.json'), opts.metrics);
}
