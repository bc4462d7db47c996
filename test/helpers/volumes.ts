/** Synthetic label maps for the metric tests (NIfTI order: i fastest). */
import type { Vec3 } from '@llmed/imaging';

/** Flat index of voxel (i, j, k) on a grid of `dims`. */
export const voxelIndex = (dims: readonly number[], i: number, j: number, k: number) => i + dims[0] * (j + dims[1] * k);

/** Binary ball of radius r (voxels) centred at c, filled with `value`. */
export function ball(dims: Vec3, c: readonly number[], r: number, value = 1): Int32Array {
  const out = new Int32Array(dims[0] * dims[1] * dims[2]);
  for (let k = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++) {
    if ((i - c[0]) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2 <= r * r) out[voxelIndex(dims, i, j, k)] = value;
  }
  return out;
}
