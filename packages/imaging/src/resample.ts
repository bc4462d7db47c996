/**
 * Grid resampling to a new shape or spacing: trilinear for images, nearest neighbour for labels.
 *
 * Convention: **align corners**. Along each axis the centre of the first output voxel coincides with
 * the centre of the first input voxel, and the centre of the last with the last:
 *
 *     x_in(o) = o * (n_in - 1) / (n_out - 1)        (o = 0 .. n_out-1; x_in(0) = (n_in-1)/2 if n_out = 1)
 *
 * This is torch `interpolate(..., align_corners=True)` and `scipy.ndimage.zoom` (default
 * grid_mode=False) — the convention of the registration papers' field upsampling. The affine is
 * updated to `A · diag(s) ` with `s = (n_in-1)/(n_out-1)` (plus a centring shift when n_out = 1), so
 * every output voxel sits at the world position it was sampled from.
 *
 * Speed: per-axis index/weight tables are computed once (Int32Array/Float32Array); the inner loop
 * over i reads only typed arrays and allocates nothing.
 */
import { dataError } from '@llmed/core/errors';
import { multiplyAffine, type Vec3 } from './affine.ts';
import { allocLike, asFloat32, withData, type Volume, type VoxelArray } from './volume.ts';

export type ResampleMode = 'linear' | 'nearest';

export interface ResampleOptions {
  /**
   * For 3-component displacement fields in voxel units ('voxel'): component c is rescaled by
   * (n_out_c - 1) / (n_in_c - 1) so the displacement still spans the same physical distance
   * (upsampling a field by 2 doubles its values). Default: components are resampled as is.
   */
  vectors?: 'voxel' | 'channels';
}

/** Continuous input coordinate of output voxel `o` under align-corners. */
export function alignCornersCoordinate(o: number, nIn: number, nOut: number): number {
  return nOut > 1 ? (o * (nIn - 1)) / (nOut - 1) : (nIn - 1) / 2;
}

/** Per-axis tables for linear interpolation: lower index, upper index, weight of the upper one. */
export interface LinearAxisTable {
  lo: Int32Array;
  hi: Int32Array;
  w: Float32Array;
}

/** Linear interpolation table for one axis resized from nIn to nOut voxels (align corners). */
export function linearAxisTable(nIn: number, nOut: number): LinearAxisTable {
  const lo = new Int32Array(nOut);
  const hi = new Int32Array(nOut);
  const w = new Float32Array(nOut);
  for (let o = 0; o < nOut; o++) {
    const x = alignCornersCoordinate(o, nIn, nOut);
    let i0 = Math.floor(x);
    if (i0 >= nIn - 1) {
      i0 = nIn - 1;
      lo[o] = i0;
      hi[o] = i0;
      w[o] = 0;
    } else {
      if (i0 < 0) i0 = 0;
      lo[o] = i0;
      hi[o] = i0 + 1;
      w[o] = x - i0;
    }
  }
  return { lo, hi, w };
}

/** Nearest-neighbour index table for one axis (align corners; ties round up). */
export function nearestAxisTable(nIn: number, nOut: number): Int32Array {
  const idx = new Int32Array(nOut);
  for (let o = 0; o < nOut; o++) {
    const x = alignCornersCoordinate(o, nIn, nOut);
    // A tiny epsilon keeps exact .5 ties stable against floating-point noise in x.
    idx[o] = Math.min(nIn - 1, Math.max(0, Math.floor(x + 0.5 + 1e-9)));
  }
  return idx;
}

/**
 * Trilinear resampling of a component-major Float32 array from `inDims` to `outDims` (align corners).
 * Low-level kernel: `resampleToShape` is the usual entry point.
 */
export function resampleTrilinear(src: Float32Array, inDims: readonly number[], outDims: readonly number[], components = 1): Float32Array {
  const [nx, ny, nz] = inDims;
  const [ox, oy, oz] = outDims;
  const tx = linearAxisTable(nx, ox);
  const ty = linearAxisTable(ny, oy);
  const tz = linearAxisTable(nz, oz);
  const nxy = nx * ny;
  const nIn = nxy * nz;
  const nOut = ox * oy * oz;
  const out = new Float32Array(nOut * components);
  const xlo = tx.lo;
  const xhi = tx.hi;
  const xw = tx.w;
  let o = 0;
  for (let c = 0; c < components; c++) {
    const base = c * nIn;
    for (let k = 0; k < oz; k++) {
      const z0 = base + tz.lo[k] * nxy;
      const z1 = base + tz.hi[k] * nxy;
      const wz = tz.w[k];
      for (let j = 0; j < oy; j++) {
        const y0 = ty.lo[j] * nx;
        const y1 = ty.hi[j] * nx;
        const wy = ty.w[j];
        const r00 = z0 + y0;
        const r01 = z0 + y1;
        const r10 = z1 + y0;
        const r11 = z1 + y1;
        const w00 = (1 - wy) * (1 - wz);
        const w01 = wy * (1 - wz);
        const w10 = (1 - wy) * wz;
        const w11 = wy * wz;
        for (let i = 0; i < ox; i++) {
          const a = xlo[i];
          const b = xhi[i];
          const wx = xw[i];
          const v00a = src[r00 + a];
          const v01a = src[r01 + a];
          const v10a = src[r10 + a];
          const v11a = src[r11 + a];
          const v00 = v00a + (src[r00 + b] - v00a) * wx;
          const v01 = v01a + (src[r01 + b] - v01a) * wx;
          const v10 = v10a + (src[r10 + b] - v10a) * wx;
          const v11 = v11a + (src[r11 + b] - v11a) * wx;
          out[o++] = w00 * v00 + w01 * v01 + w10 * v10 + w11 * v11;
        }
      }
    }
  }
  return out;
}

/** Nearest-neighbour resampling (align corners); keeps the array type, so label values are exact. */
export function resampleNearest<T extends VoxelArray>(src: T, inDims: readonly number[], outDims: readonly number[], components = 1): T {
  const [nx, ny, nz] = inDims;
  const [ox, oy, oz] = outDims;
  const ix = nearestAxisTable(nx, ox);
  const iy = nearestAxisTable(ny, oy);
  const iz = nearestAxisTable(nz, oz);
  const nxy = nx * ny;
  const nIn = nxy * nz;
  const out = allocLike(src, ox * oy * oz * components);
  let o = 0;
  for (let c = 0; c < components; c++) {
    const base = c * nIn;
    for (let k = 0; k < oz; k++) {
      const zb = base + iz[k] * nxy;
      for (let j = 0; j < oy; j++) {
        const row = zb + iy[j] * nx;
        for (let i = 0; i < ox; i++) out[o++] = src[row + ix[i]];
      }
    }
  }
  return out;
}

/** The affine of a grid resized from `inDims` to `outDims` under align corners. */
export function resampledAffine(affine: readonly number[], inDims: readonly number[], outDims: readonly number[]): number[] {
  const S = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  for (let a = 0; a < 3; a++) {
    if (outDims[a] > 1) {
      S[5 * a] = (inDims[a] - 1) / (outDims[a] - 1);
    } else {
      // One output voxel at the centre of the input extent, as wide as the whole input.
      S[5 * a] = inDims[a];
      S[4 * a + 3] = (inDims[a] - 1) / 2;
    }
  }
  return multiplyAffine(affine, S);
}

function checkShape(vol: Volume, shape: readonly number[], where: string): Vec3 {
  if (shape.length !== 3 || shape.some((n) => !Number.isInteger(n) || n < 1)) {
    throw dataError(where, `target shape must be three positive integers, got [${shape.join(', ')}]`);
  }
  for (let a = 0; a < 3; a++) {
    if (vol.dims[a] === 1 && shape[a] > 1) {
      throw dataError(where, `axis ${a} has a single voxel; it cannot be resampled to ${shape[a]} voxels under align-corners`);
    }
  }
  return [shape[0], shape[1], shape[2]];
}

/**
 * Resample `vol` to `shape` voxels: trilinear ('linear', Float32 output) for images, nearest
 * ('nearest', same array type) for labels. Align corners (see module doc); affine and spacing are
 * updated so world positions are preserved. Returns a copy with the same values when the shape is
 * unchanged.
 */
export function resampleToShape(vol: Volume, shape: readonly number[], mode: ResampleMode = 'linear', opts: ResampleOptions = {}): Volume {
  const outDims = checkShape(vol, shape, 'resampleToShape');
  const C = vol.components;
  let data: VoxelArray;
  const same = outDims[0] === vol.dims[0] && outDims[1] === vol.dims[1] && outDims[2] === vol.dims[2];
  if (same && (mode === 'linear' || mode === 'nearest')) {
    // Every output voxel centre is an input voxel centre: copy, so NaNs next to a voxel cannot leak
    // into it through a zero interpolation weight.
    data = mode === 'linear' ? Float32Array.from(vol.data) : vol.data.slice();
  } else if (mode === 'linear') data = resampleTrilinear(asFloat32(vol.data), vol.dims, outDims, C);
  else if (mode === 'nearest') data = resampleNearest(vol.data, vol.dims, outDims, C);
  else throw dataError('resampleToShape', `unknown resampling mode '${String(mode)}'; use 'linear' or 'nearest'`);

  if (opts.vectors === 'voxel') {
    if (C !== 3) throw dataError('resampleToShape', `vectors: 'voxel' needs a 3-component field, this volume has ${C}`);
    const n = outDims[0] * outDims[1] * outDims[2];
    for (let c = 0; c < 3; c++) {
      const f = outDims[c] > 1 && vol.dims[c] > 1 ? (outDims[c] - 1) / (vol.dims[c] - 1) : 1;
      if (f === 1) continue;
      for (let i = c * n; i < (c + 1) * n; i++) data[i] *= f;
    }
  }
  const affine = resampledAffine(vol.affine, vol.dims, outDims);
  return withData(vol, data, { dims: outDims, affine, datatype: mode === 'linear' ? 'float32' : vol.datatype });
}

/**
 * The shape `resampleToSpacing` produces: per axis `round((n - 1) * spacing_in / spacing_out) + 1`,
 * i.e. the number of voxels whose centres span the same first-to-last-centre extent.
 */
export function shapeForSpacing(dims: readonly number[], spacingIn: readonly number[], spacingOut: readonly number[]): Vec3 {
  return [0, 1, 2].map((a) => Math.max(1, Math.round(((dims[a] - 1) * spacingIn[a]) / spacingOut[a]) + 1)) as Vec3;
}

/**
 * Resample `vol` to (approximately) the voxel size `spacing` in mm, keeping the extent between the
 * first and last voxel centres (align corners). The achieved spacing is
 * `(n_in - 1) * spacing_in / (n_out - 1)`, within half a voxel of the request over the extent; read
 * it from the result's `spacing`.
 */
export function resampleToSpacing(vol: Volume, spacing: readonly number[], mode: ResampleMode = 'linear', opts: ResampleOptions = {}): Volume {
  if (spacing.length !== 3 || spacing.some((s) => !(s > 0) || !Number.isFinite(s))) {
    throw dataError('resampleToSpacing', `target spacing must be three positive numbers (mm), got [${spacing.join(', ')}]`);
  }
  return resampleToShape(vol, shapeForSpacing(vol.dims, vol.spacing, spacing), mode, opts);
}
