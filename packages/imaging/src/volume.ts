/**
 * The in-memory volume every imaging function works on.
 *
 * Layout (binding across llmed): the NIfTI i axis is fastest, so voxel (i, j, k) of component c is
 * `data[c * nvox + i + nx * (j + ny * k)]` with `nvox = nx * ny * nz`. Scalars have `components = 1`;
 * displacement fields have `components = 3`, stored component-major (all x displacements, then all y,
 * then all z). In torch terms this is `(C, K, J, I)` in C order.
 */
import { spacingFromAffine, type Vec3 } from './affine.ts';

export type { Vec3 } from './affine.ts';

/** Typed arrays a volume may hold: Float32Array for images and fields, integer arrays for labels. */
export type VoxelArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array;

export interface Volume<T extends VoxelArray = VoxelArray> {
  /** Voxel values, i fastest, component-major (see module doc). */
  data: T;
  /** [nx, ny, nz] — voxels along NIfTI axes i, j, k. */
  dims: Vec3;
  /** 1 for scalar images and label maps, 3 for displacement fields, C for multi-channel volumes. */
  components: number;
  /** Voxel size in mm along i, j, k (the column norms of the affine's 3x3 part). */
  spacing: Vec3;
  /** Row-major 4x4 voxel -> world (RAS+ mm) matrix, like nibabel's `img.affine`. */
  affine: number[];
  /** On-disk datatype name this volume came from or should be written as ('uint8', 'float32', ...). */
  datatype?: string;
  /** NIfTI intent name ('NONE', 'LABEL', 'VECTOR', 'DISPVECT', ...). */
  intent?: string;
  /** Free-text description (NIfTI `descrip`, 80 characters on disk). */
  description?: string;
}

/** Number of voxels of one component: nx * ny * nz. */
export function voxelCount(vol: { dims: readonly number[] }): number {
  return vol.dims[0] * vol.dims[1] * vol.dims[2];
}

/** Flat data index of voxel (i, j, k) in component c. */
export function voxelIndex(dims: readonly number[], i: number, j: number, k: number, c = 0): number {
  return c * dims[0] * dims[1] * dims[2] + i + dims[0] * (j + dims[1] * k);
}

/**
 * Build a volume, checking that data length equals nx·ny·nz·components. Spacing defaults to the
 * column norms of the affine; the affine defaults to diag(spacing) (or the identity).
 */
export function makeVolume<T extends VoxelArray>(
  data: T,
  dims: readonly number[],
  opts: { components?: number; affine?: readonly number[]; spacing?: readonly number[]; datatype?: string; intent?: string; description?: string } = {},
): Volume<T> {
  const components = opts.components ?? 1;
  if (dims.length !== 3 || dims.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new Error(`makeVolume: dims must be three positive integers, got [${dims.join(', ')}]`);
  }
  const expected = dims[0] * dims[1] * dims[2] * components;
  if (data.length !== expected) {
    throw new Error(`makeVolume: data has ${data.length} values, dims [${dims.join(', ')}] x ${components} component(s) need ${expected}`);
  }
  let affine: number[];
  if (opts.affine) {
    if (opts.affine.length !== 16) throw new Error('makeVolume: affine must have 16 numbers (row-major 4x4)');
    affine = [...opts.affine];
  } else {
    const s = opts.spacing ?? [1, 1, 1];
    affine = [s[0], 0, 0, 0, 0, s[1], 0, 0, 0, 0, s[2], 0, 0, 0, 0, 1];
  }
  const vol: Volume<T> = { data, dims: [dims[0], dims[1], dims[2]], components, spacing: spacingFromAffine(affine), affine };
  if (opts.datatype !== undefined) vol.datatype = opts.datatype;
  if (opts.intent !== undefined) vol.intent = opts.intent;
  if (opts.description !== undefined) vol.description = opts.description;
  return vol;
}

/** A copy of `vol` with new data (and optionally new dims/affine/components); metadata carried over. */
export function withData<T extends VoxelArray>(
  vol: Volume,
  data: T,
  changes: { dims?: Vec3; affine?: number[]; components?: number; datatype?: string } = {},
): Volume<T> {
  const affine = changes.affine ?? [...vol.affine];
  const out: Volume<T> = {
    data,
    dims: changes.dims ?? [vol.dims[0], vol.dims[1], vol.dims[2]],
    components: changes.components ?? vol.components,
    spacing: spacingFromAffine(affine),
    affine,
  };
  const datatype = changes.datatype ?? vol.datatype;
  if (datatype !== undefined) out.datatype = datatype;
  if (vol.intent !== undefined) out.intent = vol.intent;
  if (vol.description !== undefined) out.description = vol.description;
  return out;
}

/** Allocate an empty typed array of the same kind as `like`. */
export function allocLike<T extends VoxelArray>(like: T, length: number): T {
  const Ctor = like.constructor as new (n: number) => T;
  return new Ctor(length);
}

/** True for integer typed arrays (whose values are always integers). */
export function isIntegerArray(a: VoxelArray): boolean {
  return !(a instanceof Float32Array || a instanceof Float64Array);
}

/** A Float32Array with the same values (the same object if it already is one). */
export function asFloat32(a: VoxelArray): Float32Array {
  if (a instanceof Float32Array) return a;
  const out = new Float32Array(a.length);
  out.set(a);
  return out;
}
