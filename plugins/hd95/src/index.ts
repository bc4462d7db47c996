/**
 * hd95 — 95th-percentile symmetric surface distance in mm (spacing honoured)
 *
 * HD95_l = 95th percentile (numpy linear) of the pooled distances from each surface voxel of A to the
 * nearest surface voxel of B and back, A = {fixed == l}, B = {warped moving == l}; surfaces are
 * 6-connectivity boundaries; distances use the fixed image's voxel spacing (exact EDT). A label empty in
 * either map is NaN and left out of the mean. medpy `hd95(voxelspacing=spacing)`, MambaMorph's HD95.
 * For Learn2Reg's voxel-unit variant use `l2r-hd95`.
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';
import { chooseLabels, LABELS_OPTION_SCHEMA, requireLabelMaps, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';
import { hd95 } from './hd95.ts';

export interface Hd95Options { labels?: number[] }

export { hd95 } from './hd95.ts';

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
  python: pythonEntry(import.meta.url, '../python', 'llmed_hd95', 'reference'),
  runtime,
  example: {
    // two boxes, the warped ones shifted along i and j: both labels overlap partly
    options: {},
    inputs: {
      fixedLabels: { shape: [6, 8, 10], boxes: [{ label: 1, lo: [1, 1, 1], hi: [4, 5, 6] }, { label: 2, lo: [2, 4, 5], hi: [5, 7, 9] }], dtype: 'int32' },
      warpedLabels: { shape: [6, 8, 10], boxes: [{ label: 1, lo: [1, 2, 2], hi: [4, 6, 6] }, { label: 2, lo: [2, 4, 6], hi: [5, 8, 10] }], dtype: 'int32' },
      spacing: [0.8, 1, 2.5],
    },
  },
});

export default pluginModule(descriptor);
