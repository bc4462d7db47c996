/**
 * l2r-hd95 — Learn2Reg-style HD95 in voxels (max of the two directed 95th percentiles)
 *
 * HD95_l = max(p95(A→B), p95(B→A)) of the directed surface distances with spacing 1 (voxels), each p95
 * the first sorted distance whose cumulative share reaches 95 % (DeepMind surface-distance's
 * `compute_robust_hausdorff`, as Learn2Reg's evaluation calls it with `np.ones(3)`). Surfaces are the
 * 6-connectivity boundary voxels with equal weights (Learn2Reg weights corner-surface elements by area;
 * see `l2rHd95` in @llmed/imaging). Empty label in either map → NaN, left out of the mean.
 */
import { definePlugin, pluginModule } from '@llmed/core';
import { chooseLabels, LABELS_OPTION_SCHEMA, l2rHd95, requireLabelMaps, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';

export interface L2rHd95Options { labels?: number[] }

export const runtime: MetricRuntime<L2rHd95Options> = {
  needsLabels: true,
  compute(input: MetricInput, options: Partial<L2rHd95Options> = {}): MetricResult {
    const { fixed, warped, labels } = requireLabelMaps('l2r-hd95', input);
    const r = l2rHd95(fixed, warped, input.dims, chooseLabels(options.labels, labels, fixed, warped));
    return { value: r.mean, perLabel: r.perLabel, unit: 'voxel', higherIsBetter: false };
  },
};

export const descriptor = definePlugin<L2rHd95Options>({
  id: 'l2r-hd95',
  kind: 'Metric',
  summary: "Learn2Reg-style HD95 in voxels: max of the directed 95th percentiles, spacing ignored",
  reference: 'Learn2Reg evaluation compute_hd95 (surface-distance robust Hausdorff, spacing 1); TOOLCHAIN.md',
  options: {
    type: 'object',
    properties: {
      labels: LABELS_OPTION_SCHEMA,
    },
  },
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
