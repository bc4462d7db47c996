/**
 * endpoint-error — mean endpoint error (mm) against the true displacement field
 *
 * value = mean over p ∈ R of ‖diag(spacing)·(u(p) − u*(p))‖₂, u the predicted field and u* the true one,
 * both in voxels of the fixed grid. Only pairs made by a known deformation have u* (the synthetic-warps
 * proxy). R ('region' option): 'foreground' = voxels the fixed label map marks non-zero when the pair has
 * labels (background holds no image structure a method could recover a field from), the whole grid when it
 * has none; 'all' = the whole grid.
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';
import { requireGroundTruth, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';
import { endpointError } from './endpoint-error.ts';

export interface EndpointErrorOptions { region: 'foreground' | 'all' }

export { endpointError } from './endpoint-error.ts';

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
  python: pythonEntry(import.meta.url, '../python', 'llmed_endpoint_error', 'reference'),
  runtime,
  example: {
    options: {},
    inputs: {
      field: { shape: [3, 6, 8, 10], sine: { seed: 1, scale: 0.5, offset: 0 } },
      groundTruthField: { shape: [3, 6, 8, 10], sine: { seed: 2, scale: 0.5, offset: 0.1 } },
      fixedLabels: { shape: [6, 8, 10], boxes: [{ label: 1, lo: [1, 1, 1], hi: [4, 5, 6] }], dtype: 'int32' },
      spacing: [0.8, 1, 2.5],
    },
  },
});

export default pluginModule(descriptor);
