/** Folding as LLaMA-Reg counts it: the maths of the `jacobian-nonpositive` metric. */

/**
 * 100 · #{det J ≤ 0} / #voxels: LLaMA-Reg's convention (its code stores the fraction, the paper prints %).
 * All voxels count in the denominator; a NaN determinant (a NaN in the field) counts as not folded. NaN for
 * an empty input.
 */
export function nonpositiveJacobianPercent(detJ: ArrayLike<number>): number {
  if (detJ.length === 0) return NaN;
  let folded = 0;
  for (let q = 0; q < detJ.length; q++) if (detJ[q] <= 0) folded++;
  return (100 * folded) / detJ.length;
}
