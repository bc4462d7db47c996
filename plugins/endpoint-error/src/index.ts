/**
 * endpoint-error — mean endpoint error (mm) against the true displacement field
 *
 * value = mean over p ∈ R of ‖diag(spacing)·(u(p) − u*(p))‖₂, u the predicted field and u* the true one,
 * both in voxels of the fixed grid. Only pairs made by a known deformation have u* (the synthetic-warps
 * proxy). R ('region' option): 'foreground' = voxels the fixed label map marks non-zero when the pair has
 * labels (background holds no image structure a method could recover a field from), the whole grid when it
 * has none; 'all' = the whole grid.
 */
import { definePlugin, pluginModule } from '@llmed/core';
import { endpointError, requireGroundTruth, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';

export interface EndpointErrorOptions { region: 'foreground' | 'all' }

export const runtime: MetricRuntime<EndpointErrorOptions> = {
  needsGroundTruth: true,
  compute(input: MetricInput, options: Partial<EndpointErrorOptions> = {}): MetricResult {
    const { field, truth, dims } = requireGroundTruth('endpoint-error', input);
    const mask = (options.region ?? 'foreground') === 'foreground' ? input.fixedLabels : undefined;
    return { value: endpointError(field, truth, dims, input.spacing, mask), unit: 'mm', higherIsBetter: false };
  },
};

export const descriptor = definePlugin<EndpointErrorOptions>({
  id: 'endpoint-error',
  kind: 'Metric',
  summary: 'EPE: mean ‖u − u*‖ in mm against the true field (pairs made by known deformations)',
  reference: 'optical-flow endpoint error; synthetic-warps proxy (bridge/python/llmed/proxies.py)',
  options: {
    type: 'object',
    properties: { region: { enum: ['foreground', 'all'], default: 'foreground', description: "'foreground': fixed labels > 0 when the pair has labels; 'all': every voxel" } },
  },
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
