/**
 * HD95 in mm, the maths of the `hd95` metric (medpy's `hd95` with `voxelspacing`, MambaMorph's HD95).
 */
import { perLabelSurfaceDistances, percentileSorted, type LabelScores } from '@llmed/imaging';

/**
 * HD95 per label, in mm: the 95th percentile (numpy linear) of the pooled distances from every surface
 * voxel of A to the nearest surface voxel of B and from every surface voxel of B to the nearest of A,
 * distances measured with the voxel spacing (exact EDT). Surface = 6-connectivity boundary (imaging's
 * distance.ts). This is medpy's `hd95` with `voxelspacing=spacing, connectivity=1`, MambaMorph's HD95
 * (with spacing). A label empty in either map scores NaN and is left out of the mean.
 */
export function hd95(fixed: ArrayLike<number>, warped: ArrayLike<number>, dims: readonly number[], spacing: readonly number[], labels: readonly number[]): LabelScores {
  return perLabelSurfaceDistances(fixed, warped, dims, spacing, labels, (aToB, bToA) => {
    const pooled = new Float64Array(aToB.length + bToA.length);
    pooled.set(aToB);
    pooled.set(bToA, aToB.length);
    pooled.sort();
    return percentileSorted(pooled, 95);
  });
}
