/**
 * hd95 — 95th-percentile symmetric surface distance in mm (spacing honoured)
 *
 * HD95_l = 95th percentile (numpy linear) of the pooled distances from each surface voxel of A to the
 * nearest surface voxel of B and back, A = {fixed == l}, B = {warped moving == l}; surfaces are
 * 6-connectivity boundaries; distances use the fixed image's voxel spacing (exact EDT). A label empty in
 * either map is NaN and left out of the mean. medpy `hd95(voxelspacing=spacing)`, MambaMorph's HD95.
 * For Learn2Reg's voxel-unit variant use `l2r-hd95`.
 */
import { definePlugin, pluginModule } from '@llmed/core';
import { chooseLabels, LABELS_OPTION_SCHEMA, hd95, requireLabelMaps, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';

export interface Hd95Options { labels?: number[] }

export const runtime: MetricRuntime<Hd95Options> = {
  needsLabels: true,
  compute(input: MetricInput, options: Partial<Hd95Options> = {}): MetricResult {
    const { fixed, warped, labels } = requireLabelMaps('hd95', input);
    const r = hd95(fixed, warped, input.dims, input.spacing, chooseLabels(options.labels, labels, fixed, warped));
    return { value: r.mean, perLabel: r.perLabel, unit: 'mm', higherIsBetter: false };
  },
};

export const descriptor = definePlugin<Hd95Options>({
  id: 'hd95',
  kind: 'Metric',
  summary: 'HD95: 95th percentile of pooled symmetric surface distances, in mm (spacing honoured)',
  reference: 'MambaMorph / LLM-Morph §2.9 (spec); medpy hd95 with voxelspacing',
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
