/** Folding as MambaMorph counts it (strict): the maths of the `jacobian-negative` metric. */

/**
 * 100 · #{det J < 0} / #voxels: MambaMorph's strict count (a voxel with det J exactly 0 does not fold here,
 * it does for `jacobian-nonpositive`). All voxels count in the denominator; a NaN determinant counts as
 * not folded. NaN for an empty input.
 */
export function negativeJacobianPercent(detJ: ArrayLike<number>): number {
  if (detJ.length === 0) return NaN;
  let folded = 0;
  for (let q = 0; q < detJ.length; q++) if (detJ[q] < 0) folded++;
  return (100 * folded) / detJ.length;
}
