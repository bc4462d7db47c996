/**
 * sdlogj — standard deviation of log det J over the voxels where det J > 0
 *
 * value = population std of log(det J) over voxels with det J > 0; folded voxels (det J ≤ 0) have no
 * logarithm and are left out — read them from `jacobian-nonpositive`. det J = det(I + ∇u), np.gradient
 * stencils, field in voxels. Learn2Reg's shifted variant is `l2r-sdlogj`.
 */
import { definePlugin, pluginModule } from '@llmed/core';
import { fieldJacobian, sdLogJacobian, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';

export type SdLogJOptions = Record<string, never>;

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
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
