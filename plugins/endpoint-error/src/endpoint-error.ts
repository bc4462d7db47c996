/** Endpoint error: the maths of the `endpoint-error` metric. */

/**
 * Endpoint error (mm) of a displacement field against the true one, on the same grid:
 *
 *   EPE = mean over p ∈ R of ‖S (u(p) − u*(p))‖₂,   S = diag(spacing)
 *
 * `field` and `truth` are in voxels of that grid, component-major (3 × nvox). R is the set of voxels where
 * `mask` is non-zero when a mask is given, else the whole grid. Returns NaN when R is empty.
 */
export function endpointError(field: ArrayLike<number>, truth: ArrayLike<number>, dims: readonly number[], spacing: readonly number[], mask?: ArrayLike<number>): number {
  const n = dims[0] * dims[1] * dims[2];
  if (field.length !== 3 * n || truth.length !== 3 * n) throw new Error(`endpointError: fields of ${field.length} and ${truth.length} values do not match dims [${dims.join(', ')}] (3 × ${n})`);
  if (mask && mask.length !== n) throw new Error(`endpointError: mask of ${mask.length} voxels does not match dims [${dims.join(', ')}]`);
  const [sx, sy, sz] = spacing;
  let sum = 0;
  let count = 0;
  for (let q = 0; q < n; q++) {
    if (mask && !mask[q]) continue;
    const dx = (field[q] - truth[q]) * sx, dy = (field[n + q] - truth[n + q]) * sy, dz = (field[2 * n + q] - truth[2 * n + q]) * sz;
    sum += Math.sqrt(dx * dx + dy * dy + dz * dz);
    count++;
  }
  return count ? sum / count : NaN;
}
