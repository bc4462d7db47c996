/**
 * l2r-sdlogj — Learn2Reg's SDlogJ: std(log(clip(det J + 3, 1e-9, 1e9))) over the interior
 *
 * value = population std of log(clip(det J + 3, 1e-9, 1e9)) over voxels at least `crop` (default 2)
 * voxels from every face, as Learn2Reg's evaluation computes it (its determinant is cropped 2:-2, where
 * its zero-padded central differences equal np.gradient's). The +3 shift compresses the spread: these
 * numbers are not comparable with `sdlogj`.
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';
import { fieldJacobian, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';
import { l2rSdLogJacobian } from './l2r-sdlogj.ts';

export interface L2rSdLogJOptions { crop: number }

export { l2rSdLogJacobian } from './l2r-sdlogj.ts';

export const runtime: MetricRuntime<L2rSdLogJOptions> = {
  compute(input: MetricInput, options: Partial<L2rSdLogJOptions> = {}): MetricResult {
    const { detJ, dims } = fieldJacobian('l2r-sdlogj', input);
    return { value: l2rSdLogJacobian(detJ, dims, { crop: options.crop ?? 2 }), unit: 'dimensionless', higherIsBetter: false };
  },
};

export const descriptor = definePlugin<L2rSdLogJOptions>({
  id: 'l2r-sdlogj',
  kind: 'Metric',
  summary: "Learn2Reg SDlogJ: std(log(clip(det J + 3, 1e-9, 1e9))) over the 2-voxel-cropped interior",
  reference: 'Learn2Reg evaluation compute_log_jacdet_std; TOOLCHAIN.md',
  options: {
    type: 'object',
    properties: {
      crop: { type: 'integer', minimum: 0, default: 2, description: 'voxels dropped at every face (Learn2Reg: 2)' },
    },
  },
  python: pythonEntry(import.meta.url, '../python', 'llmed_l2r_sdlogj', 'reference'),
  runtime,
  example: {
    // a field of ±0.6 voxels that changes quickly from voxel to voxel, so some voxels fold
    options: {},
    inputs: { field: { shape: [3, 6, 8, 10], sine: { seed: 1, scale: 0.6, offset: 0 } } },
  },
});

export default pluginModule(descriptor);
