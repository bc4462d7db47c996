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
import { invertAffine, multiplyAffine, type Vec3 } from './affine.ts';
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

/** A target grid: voxel counts and the voxel → world (RAS+ mm) affine. */
export interface TargetGrid {
  dims: readonly number[];
  affine: readonly number[];
}

export interface WorldResampleOptions {
  /**
   * A displacement in world millimetres at each voxel of the target grid (3 × nvox, component-major):
   * output voxel x samples the source at world point `A_grid·x + u(x)`. This is how a registration
   * field warps the original moving scan in one interpolation.
   */
  displacementMm?: ArrayLike<number>;
  /** Value of output voxels whose sampling point lies outside the source (default 0; NaN marks them missing). */
  outside?: number;
  /** Clamp sampling points into the source instead of using `outside` (fields, which extend flat). */
  clamp?: boolean;
}

/**
 * Resample `vol` onto another grid *in world space*: output voxel x takes the source value at the world
 * point `A_grid·x` (plus `displacementMm` when given), mapped to source voxel coordinates through the
 * inverse of the source's affine — so two scans with different grids, orientations or fields of view
 * line up as their headers say (nibabel/scipy's `affine_transform(src, inv(A_src)·A_grid)`).
 * 'linear' is trilinear on the 8 neighbours (Float32 output); 'nearest' rounds half up and keeps the array
 * type (labels). 'linear' gives `outside` to points beyond the source's first or last voxel centre,
 * 'nearest' to points whose nearest voxel is not in the source. Components are resampled independently (vector values, e.g. world-mm fields, are unchanged).
 */
export function resampleOntoGrid(vol: Volume, grid: TargetGrid, mode: ResampleMode = 'linear', opts: WorldResampleOptions = {}): Volume {
  const [ox, oy, oz] = grid.dims;
  const nOut = ox * oy * oz;
  const [nx, ny, nz] = vol.dims;
  const nSrc = nx * ny * nz;
  const C = vol.components;
  const u = opts.displacementMm;
  if (u && u.length !== 3 * nOut) throw dataError('resampleOntoGrid', `displacement has ${u.length} values, the target grid ${grid.dims.join('x')} needs 3 x ${nOut}`);
  let inv: number[];
  try {
    inv = invertAffine(vol.affine);
  } catch {
    throw dataError('resampleOntoGrid', 'the source affine is singular: its voxels have no position in world space');
  }
  const M = multiplyAffine(inv, grid.affine); // target voxel → source voxel
  const outside = opts.outside ?? 0;
  const clamp = opts.clamp === true;
  const src = mode === 'linear' ? asFloat32(vol.data) : vol.data;
  const out: VoxelArray = mode === 'linear' ? new Float32Array(nOut * C) : allocLike(vol.data, nOut * C);
  const tol = 1e-6; // a target centre on the source's last centre, up to rounding, is inside
  for (let k = 0, o = 0; k < oz; k++) {
    for (let j = 0; j < oy; j++) {
      for (let i = 0; i < ox; i++, o++) {
        let x = M[0] * i + M[1] * j + M[2] * k + M[3];
        let y = M[4] * i + M[5] * j + M[6] * k + M[7];
        let z = M[8] * i + M[9] * j + M[10] * k + M[11];
        if (u) {
          const a = u[o], b = u[nOut + o], c = u[2 * nOut + o];
          x += inv[0] * a + inv[1] * b + inv[2] * c;
          y += inv[4] * a + inv[5] * b + inv[6] * c;
          z += inv[8] * a + inv[9] * b + inv[10] * c;
        }
        if (clamp) {
          x = Math.min(Math.max(x, 0), nx - 1);
          y = Math.min(Math.max(y, 0), ny - 1);
          z = Math.min(Math.max(z, 0), nz - 1);
        }
        if (mode === 'nearest') {
          const xi = Math.round(x), yi = Math.round(y), zi = Math.round(z);
          const inside = xi >= 0 && xi < nx && yi >= 0 && yi < ny && zi >= 0 && zi < nz;
          for (let c = 0; c < C; c++) out[c * nOut + o] = inside ? src[c * nSrc + xi + nx * (yi + ny * zi)] : outside;
          continue;
        }
        if (!(x >= -tol && x <= nx - 1 + tol && y >= -tol && y <= ny - 1 + tol && z >= -tol && z <= nz - 1 + tol)) {
          for (let c = 0; c < C; c++) out[c * nOut + o] = outside;
          continue;
        }
        const x0 = Math.min(Math.max(Math.floor(x), 0), Math.max(nx - 2, 0)), y0 = Math.min(Math.max(Math.floor(y), 0), Math.max(ny - 2, 0)), z0 = Math.min(Math.max(Math.floor(z), 0), Math.max(nz - 2, 0));
        const x1 = Math.min(x0 + 1, nx - 1), y1 = Math.min(y0 + 1, ny - 1), z1 = Math.min(z0 + 1, nz - 1);
        const fx = Math.min(Math.max(x - x0, 0), 1), fy = Math.min(Math.max(y - y0, 0), 1), fz = Math.min(Math.max(z - z0, 0), 1);
        for (let c = 0; c < C; c++) {
          const b = c * nSrc;
          const r00 = b + nx * (y0 + ny * z0), r01 = b + nx * (y1 + ny * z0), r10 = b + nx * (y0 + ny * z1), r11 = b + nx * (y1 + ny * z1);
          const v00 = src[r00 + x0] + (src[r00 + x1] - src[r00 + x0]) * fx;
          const v01 = src[r01 + x0] + (src[r01 + x1] - src[r01 + x0]) * fx;
          const v10 = src[r10 + x0] + (src[r10 + x1] - src[r10 + x0]) * fx;
          const v11 = src[r11 + x0] + (src[r11 + x1] - src[r11 + x0]) * fx;
          const v0 = v00 + (v01 - v00) * fy, v1 = v10 + (v11 - v10) * fy;
          out[c * nOut + o] = v0 + (v1 - v0) * fz;
        }
      }
    }
  }
  return withData(vol, out, { dims: [ox, oy, oz], affine: [...grid.affine], datatype: mode === 'linear' ? 'float32' : vol.datatype });
}
