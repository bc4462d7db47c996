/**
 * CT preprocessing for report generation, the one implementation used by training (dataset preparation)
 * and inference alike. Both pipelines are written with @llmed/imaging's primitives (min–max, window,
 * reorientation, align-corners trilinear resampling); only the box crop/pad is new here.
 *
 * - **M3D** (spec §3.6, version 1 of Med3DLLM's `NIfTI_processor`): global min–max to [0, 1] →
 *   array (X, Y, Z) → (Z, X, Y) → trilinear, align corners, to 32×256×256 → channel. No reorientation:
 *   M3D works in the file's voxel order (pass `orientation` to reorient first).
 * - **Merlin**: RAS → 1.5×1.5×3 mm (trilinear) → HU window −1000..1000 scaled to [0, 1] → symmetric pad
 *   (value 0, i.e. −1000 HU) and centre crop to 224×224×160, as MONAI's SpatialPad / CenterSpatialCrop
 *   do. MONAI's `Spacingd` resamples without align corners; here the first and last voxel centres are
 *   kept (`resampleToSpacing`), so the achieved spacing can differ from 1.5/3 mm by under half a voxel
 *   over the extent (it is in the result's affine).
 *
 * Layout: `volume` is an llmed Volume (NIfTI i fastest) with a correct affine, so a voxel's world position
 * can always be checked; `tensor` + `tensorShape` are the bytes in the order the original model reads them
 * (M3D: (1, D=Z, H=X, W=Y); Merlin: (1, X, Y, Z)), in C order.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { dataError } from '@llmed/core/errors';
import {
  readNifti, sha256File, writePreparedVolume, type PreparedHeader,
  minMaxNormalize, multiplyAffine, permuteFlipAxes, reorientToCanonical, resampleToShape, resampleToSpacing, windowIntensity,
  withData, asFloat32, type Vec3, type Volume, type VoxelArray,
} from '@llmed/imaging';

export interface PreprocessedCT {
  volume: Volume<Float32Array>;
  tensor: Float32Array;
  tensorShape: number[];
  /** `tensor` as a Volume whose i-fastest layout is the tensor's C order (what the prepared cache stores). */
  tensorVolume: Volume<Float32Array>;
  /** What was done, for manifests. */
  steps: string[];
}

/**
 * The sub-box `[start, start + size)` of `vol` in voxels; parts outside the volume get `fill` (so a
 * negative start pads). The affine moves with the box, so every voxel keeps its world position.
 */
export function extractBox<T extends VoxelArray>(vol: Volume<T>, start: readonly number[], size: readonly number[], fill = 0): Volume<T> {
  if (size.length !== 3 || size.some((n) => !Number.isInteger(n) || n < 1)) throw dataError('extractBox', `box size must be three positive integers, got [${size.join(', ')}]`);
  const [nx, ny, nz] = vol.dims;
  const [sx, sy, sz] = size;
  const Ctor = vol.data.constructor as new (n: number) => T;
  const C = vol.components;
  const nIn = nx * ny * nz;
  const nOut = sx * sy * sz;
  const out = new Ctor(nOut * C);
  if (fill !== 0) out.fill(fill);
  const i0 = Math.max(0, -start[0]), i1 = Math.min(sx, nx - start[0]);
  for (let c = 0; c < C; c++) {
    for (let k = 0; k < sz; k++) {
      const kk = k + start[2];
      if (kk < 0 || kk >= nz) continue;
      for (let j = 0; j < sy; j++) {
        const jj = j + start[1];
        if (jj < 0 || jj >= ny || i1 <= i0) continue;
        const src = c * nIn + nx * (jj + ny * kk) + start[0];
        out.set(vol.data.subarray(src + i0, src + i1), c * nOut + sx * (j + sy * k) + i0);
      }
    }
  }
  const shift = [1, 0, 0, start[0], 0, 1, 0, start[1], 0, 0, 1, start[2], 0, 0, 0, 1];
  return withData(vol, out, { dims: [sx, sy, sz], affine: multiplyAffine(vol.affine, shift) });
}

/** MONAI's symmetric SpatialPad + CenterSpatialCrop to `shape`: start = ⌊n/2⌋ − ⌊roi/2⌋ when cropping, −⌊(roi−n)/2⌋ when padding. */
export function centerPadCrop<T extends VoxelArray>(vol: Volume<T>, shape: readonly number[], fill = 0): Volume<T> {
  const start = [0, 1, 2].map((a) => {
    const n = vol.dims[a], roi = shape[a];
    return roi <= n ? Math.floor(n / 2) - Math.floor(roi / 2) : -Math.floor((roi - n) / 2);
  });
  return extractBox(vol, start, shape, fill);
}

function checkVolume(vol: Volume, where: string): void {
  if (vol.components !== 1) throw dataError(where, `has ${vol.components} components; CT preprocessing needs one scalar image`);
  const flat = vol.dims.findIndex((d) => d < 2);
  if (flat >= 0) throw dataError(where, `is a ${vol.dims.join('×')} grid: axis ${flat} has one voxel, there is no volume to resample`);
}

export interface M3DOptions {
  /** (D, H, W) of the output tensor; default (32, 256, 256). */
  shape?: readonly number[];
  /** Reorient first (e.g. 'RAS'); default: none, M3D's own behaviour. */
  orientation?: string;
}

/** M3D's preprocessing (module doc). `where` names the file in errors. */
export function m3dPreprocess(vol: Volume, opts: M3DOptions = {}, where = 'm3d preprocessing'): PreprocessedCT {
  checkVolume(vol, where);
  const [D, H, W] = opts.shape ?? [32, 256, 256];
  const steps: string[] = [];
  let v: Volume = vol;
  if (opts.orientation) { v = reorientToCanonical(v, opts.orientation); steps.push(`reorient ${opts.orientation}`); }
  v = minMaxNormalize(v).volume;
  steps.push('min-max to [0,1] (global)');
  // Array (X, Y, Z) → (Z, X, Y): in llmed's i-fastest layout the tensor's last axis W (= Y) is i, H (= X) is j, D (= Z) is k.
  v = permuteFlipAxes(v, [1, 0, 2], [false, false, false]);
  steps.push('permute (X,Y,Z) -> (Z,X,Y)');
  const out = resampleToShape(v, [W, H, D], 'linear') as Volume<Float32Array>;
  steps.push(`trilinear align-corners to ${D}x${H}x${W}`);
  return { volume: out, tensor: out.data, tensorShape: [1, D, H, W], tensorVolume: out, steps };
}

export interface MerlinOptions {
  spacing?: Vec3;
  window?: [number, number];
  shape?: Vec3;
}

/** Merlin's preprocessing (module doc). */
export function merlinPreprocess(vol: Volume, opts: MerlinOptions = {}, where = 'merlin preprocessing'): PreprocessedCT {
  checkVolume(vol, where);
  const spacing = opts.spacing ?? [1.5, 1.5, 3];
  const [lo, hi] = opts.window ?? [-1000, 1000];
  const shape = opts.shape ?? [224, 224, 160];
  const steps: string[] = [];
  let v: Volume = reorientToCanonical(vol, 'RAS');
  steps.push('reorient RAS');
  v = resampleToSpacing(v, spacing, 'linear');
  steps.push(`trilinear to ${spacing.join('x')} mm`);
  v = windowIntensity(v, lo, hi).volume;
  const scaled = asFloat32(v.data).slice();
  for (let q = 0; q < scaled.length; q++) scaled[q] = (scaled[q] - lo) / (hi - lo);
  v = withData(v, scaled, { datatype: 'float32' });
  steps.push(`HU ${lo}..${hi} -> [0,1]`);
  const out = centerPadCrop(v as Volume<Float32Array>, shape, 0);
  steps.push(`symmetric pad (0) / centre crop to ${shape.join('x')}`);
  // Merlin reads (C, X, Y, Z) in C order: Z fastest, i.e. the i-fastest layout of the axes reversed.
  const tensorVolume = permuteFlipAxes(out, [2, 1, 0], [false, false, false]);
  return { volume: out, tensor: tensorVolume.data, tensorShape: [1, shape[0], shape[1], shape[2]], tensorVolume, steps };
}

export type CtPipeline = { name: 'm3d'; options?: M3DOptions } | { name: 'merlin'; options?: MerlinOptions };

/**
 * Preprocess a CT file once and keep it in the prepared cache (@llmed/imaging's raw float32 + JSON
 * header, memory-mapped by the Python side); the data file is in the tensor's C order, so the header's
 * `shape` is the model's input shape. The cache key is the source file's SHA-256 and the pipeline with
 * its options: a changed file or setting is prepared again, an unchanged one is read back.
 */
export async function prepareCT(file: string, pipeline: CtPipeline, cacheDir: string): Promise<{ dir: string; name: string; header: PreparedHeader; cached: boolean }> {
  const sha = await sha256File(file);
  const key = createHash('sha256').update(JSON.stringify({ sha, pipeline: pipeline.name, options: pipeline.options ?? {} })).digest('hex');
  const name = `${pipeline.name}-${key.slice(0, 20)}`;
  const headerFile = path.join(cacheDir, `${name}.json`);
  if (existsSync(headerFile)) {
    const header = JSON.parse(readFileSync(headerFile, 'utf8')) as PreparedHeader;
    if (header.meta?.key === key && existsSync(path.join(cacheDir, header.dataFile))) return { dir: cacheDir, name, header, cached: true };
  }
  const vol = await readNifti(file);
  const p = preprocessCT(vol, pipeline, file);
  const header = await writePreparedVolume(cacheDir, name, p.tensorVolume, { source: file, preprocessing: { pipeline: pipeline.name, steps: p.steps, tensorShape: p.tensorShape }, meta: { key } });
  return { dir: cacheDir, name, header, cached: false };
}

/**
 * A report experiment's `data.preprocess` — `{pipeline, shape}` with the shape in NIfTI axis order, as the
 * model's `input.shape` — as the pipeline it names. The one mapping used by dataset preparation and by
 * `llmed report` on a new scan, so training and inference see the same tensor.
 */
export function ctPipelineOf(p: { pipeline: string; shape: readonly number[]; spacing?: readonly number[] }, where = 'data.preprocess'): CtPipeline {
  if (!Array.isArray(p.shape) || p.shape.length !== 3) throw dataError(where, `shape must be three sizes in NIfTI axis order, got ${JSON.stringify(p.shape)}`);
  const [i, j, k] = p.shape;
  // M3D's tensor is (D, H, W) = (Z, X, Y) of the file, so its shape option is (k, i, j); Merlin's is (X, Y, Z) after RAS.
  if (p.pipeline === 'm3d') return { name: 'm3d', options: { shape: [k, i, j] } };
  if (p.pipeline === 'merlin') return { name: 'merlin', options: { shape: [i, j, k], ...(p.spacing ? { spacing: [...p.spacing] as Vec3 } : {}) } };
  throw dataError(where, `unknown preprocessing pipeline '${p.pipeline}'; llmed has 'm3d' and 'merlin'`);
}

/** Run `pipeline` on a volume already read (the body of prepareCT, for callers that keep the tensor in memory). */
export function preprocessCT(vol: Volume, pipeline: CtPipeline, where: string): PreprocessedCT {
  return pipeline.name === 'm3d' ? m3dPreprocess(vol, pipeline.options, where) : merlinPreprocess(vol, pipeline.options, where);
}
