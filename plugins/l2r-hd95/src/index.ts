/**
 * l2r-hd95 — Learn2Reg's HD95 in voxels, equal to its official evaluation code
 *
 * HD95_l = max(p95(A→B), p95(B→A)) of the directed surface distances with spacing 1 (voxels), surfaces
 * being the area-weighted surface elements on the voxel-corner grid and each p95 the first sorted distance
 * whose cumulative share of the surface area reaches 95 % (DeepMind surface-distance's
 * `compute_surface_distances` + `compute_robust_hausdorff`, as Learn2Reg's evaluation calls them with
 * `np.ones(3)`; see `l2rHd95` in ./l2r-hd95.ts). NaN when the label is missing from the fixed or the
 * unwarped moving map (Learn2Reg's rule), left out of the mean.
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';
import { chooseLabels, LABELS_OPTION_SCHEMA, requireLabelMaps, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';
import { l2rHd95 } from './l2r-hd95.ts';

export interface L2rHd95Options { labels?: number[] }

export { l2rHd95, voxelBoundaryHd95 } from './l2r-hd95.ts';

export const runtime: MetricRuntime<L2rHd95Options> = {
  needsLabels: true,
  compute(input: MetricInput, options: Partial<L2rHd95Options> = {}): MetricResult {
    const { fixed, warped, labels } = requireLabelMaps('l2r-hd95', input);
    const r = l2rHd95(fixed, warped, input.dims, chooseLabels(options.labels, labels, fixed, warped), { moving: input.movingLabels });
    return { value: r.mean, perLabel: r.perLabel, unit: 'voxel', higherIsBetter: false };
  },
};

export const descriptor = definePlugin<L2rHd95Options>({
  id: 'l2r-hd95',
  kind: 'Metric',
  summary: "Learn2Reg's HD95 in voxels: max of the area-weighted directed 95th percentiles on the voxel-corner surface, spacing ignored",
  reference: 'Learn2Reg evaluation compute_hd95 (surface-distance robust Hausdorff, spacing 1); TOOLCHAIN.md',
  options: {
    type: 'object',
    properties: {
      labels: LABELS_OPTION_SCHEMA,
    },
  },
  python: pythonEntry(import.meta.url, '../python', 'llmed_l2r_hd95', 'reference'),
  runtime,
  example: {
    // two boxes, warped by a shift along i and j; the unwarped moving map has both labels (Learn2Reg scores a
    // label only when the moving scan has it), and the spacing is there to show that l2r-hd95 ignores it
    options: {},
    inputs: {
      fixedLabels: { shape: [6, 8, 10], boxes: [{ label: 1, lo: [1, 1, 1], hi: [4, 5, 6] }, { label: 2, lo: [2, 4, 5], hi: [5, 7, 9] }], dtype: 'int32' },
      warpedLabels: { shape: [6, 8, 10], boxes: [{ label: 1, lo: [1, 2, 2], hi: [4, 6, 6] }, { label: 2, lo: [2, 4, 6], hi: [5, 8, 10] }], dtype: 'int32' },
      movingLabels: { shape: [6, 8, 10], boxes: [{ label: 1, lo: [1, 1, 2], hi: [4, 5, 7] }, { label: 2, lo: [2, 3, 5], hi: [5, 6, 9] }], dtype: 'int32' },
      spacing: [0.8, 1, 2.5],
    },
  },
});

export default pluginModule(descriptor);
