/** Learn2Reg's SDlogJ: the maths of the `l2r-sdlogj` metric. */
import { populationStd } from '@llmed/imaging';

/**
 * SDlogJ as Learn2Reg's evaluation computes it: std(log(clip(det J + 3, 1e-9, 1e9))) over the voxels at
 * least `crop` (default 2) voxels from every face — its `jacobian_determinant` returns
 * `jacobian[:, :, 2:-2, 2:-2, 2:-2]`, inside which its zero-padded central differences equal ours. The
 * +3 shift keeps folded voxels finite but compresses the spread, so the numbers are not comparable with
 * `sdLogJacobian` (plugin sdlogj). NaN if the crop leaves nothing.
 */
export function l2rSdLogJacobian(detJ: ArrayLike<number>, dims: readonly number[], opts: { crop?: number } = {}): number {
  const crop = opts.crop ?? 2;
  const [nx, ny, nz] = dims;
  if (detJ.length !== nx * ny * nz) throw new Error(`l2rSdLogJacobian: ${detJ.length} values do not match dims [${dims.join(', ')}]`);
  const inside = (p: number, n: number) => p >= crop && p < n - crop;
  const shiftedLog = (x: number) => Math.log(Math.min(Math.max(x + 3, 1e-9), 1e9));
  return populationStd(detJ, shiftedLog, (_x, q) => {
    const i = q % nx, j = Math.floor(q / nx) % ny, k = Math.floor(q / (nx * ny));
    return inside(i, nx) && inside(j, ny) && inside(k, nz);
  }).std;
}
