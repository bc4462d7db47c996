/** SDlogJ, plain definition: the maths of the `sdlogj` metric. */
import { populationStd } from '@llmed/imaging';

/**
 * SDlogJ, plain definition: population std of log(det J) over the voxels where det J > 0. Folded voxels
 * (det J ≤ 0), whose logarithm does not exist, are left out — report them with `jacobian-nonpositive`;
 * NaN if no voxel has det J > 0.
 */
export function sdLogJacobian(detJ: ArrayLike<number>): number {
  return populationStd(detJ, Math.log, (x) => x > 0).std;
}
