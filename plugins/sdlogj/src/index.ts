/**
 * sdlogj — standard deviation of log det J over the voxels where det J > 0
 *
 * value = population std of log(det J) over voxels with det J > 0; folded voxels (det J ≤ 0) have no
 * logarithm and are left out — read them from `jacobian-nonpositive`. det J = det(I + ∇u), np.gradient
 * stencils, field in voxels. Learn2Reg's shifted variant is `l2r-sdlogj`.
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';
import { fieldJacobian, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';
import { sdLogJacobian } from './sdlogj.ts';

export type SdLogJOptions = Record<string, never>;

export { sdLogJacobian } from './sdlogj.ts';

export const runtime: MetricRuntime<SdLogJOptions> = {
  compute(input: MetricInput): MetricResult {
    const { detJ } = fieldJacobian('sdlogj', input);
    return { value: sdLogJacobian(detJ), unit: 'dimensionless', higherIsBetter: false };
  },
};

export const descriptor = definePlugin<SdLogJOptions>({
  id: 'sdlogj',
  kind: 'Metric',
  summary: 'SDlogJ: std of log(det J) over voxels with det J > 0 (plain definition)',
  reference: 'TOOLCHAIN.md "Metric conventions differ"',
  options: { type: 'object', properties: {} },
  python: pythonEntry(import.meta.url, '../python', 'llmed_sdlogj', 'reference'),
  runtime,
  example: {
    // a field of ±0.6 voxels that changes quickly from voxel to voxel, so some voxels fold
    options: {},
    inputs: { field: { shape: [3, 6, 8, 10], sine: { seed: 1, scale: 0.6, offset: 0 } } },
  },
});

export default pluginModule(descriptor);
