/**
 * jacobian-negative — % of voxels with a negative Jacobian determinant (det J < 0, strict)
 *
 * value = 100 · #{det J < 0} / #voxels, det J as in `jacobian-nonpositive` (np.gradient stencils on a
 * correctly ordered field). MambaMorph's strict convention; its script takes the determinant from
 * SimpleITK with permuted components, which this does not reproduce (spec §2.9).
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';
import { fieldJacobian, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';
import { negativeJacobianPercent } from './folding.ts';

export type JacobianNegativeOptions = Record<string, never>;

export { negativeJacobianPercent } from './folding.ts';

export const runtime: MetricRuntime<JacobianNegativeOptions> = {
  compute(input: MetricInput): MetricResult {
    const { detJ } = fieldJacobian('jacobian-negative', input);
    return { value: negativeJacobianPercent(detJ), unit: '%', higherIsBetter: false };
  },
};

export const descriptor = definePlugin<JacobianNegativeOptions>({
  id: 'jacobian-negative',
  kind: 'Metric',
  summary: 'folding: percentage of voxels with Jacobian determinant < 0 (MambaMorph, strict)',
  reference: 'MambaMorph test_cross.py (spec §2.9)',
  options: { type: 'object', properties: {} },
  python: pythonEntry(import.meta.url, '../python', 'llmed_jacobian_negative', 'reference'),
  runtime,
  example: {
    // a field of ±0.6 voxels that changes quickly from voxel to voxel, so some voxels fold
    options: {},
    inputs: { field: { shape: [3, 6, 8, 10], sine: { seed: 1, scale: 0.6, offset: 0 } } },
  },
});

export default pluginModule(descriptor);
