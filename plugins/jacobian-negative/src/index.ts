/**
 * jacobian-negative — % of voxels with a negative Jacobian determinant (det J < 0, strict)
 *
 * value = 100 · #{det J < 0} / #voxels, det J as in `jacobian-nonpositive` (np.gradient stencils on a
 * correctly ordered field). MambaMorph's strict convention; its script takes the determinant from
 * SimpleITK with permuted components, which this does not reproduce (spec §2.9).
 */
import { definePlugin, pluginModule } from '@llmed/core';
import { fieldJacobian, foldingPercent, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';

export type JacobianNegativeOptions = Record<string, never>;

export const runtime: MetricRuntime<JacobianNegativeOptions> = {
  compute(input: MetricInput): MetricResult {
    const { detJ } = fieldJacobian('jacobian-negative', input);
    return { value: foldingPercent(detJ, { strict: true }), unit: '%', higherIsBetter: false };
  },
};

export const descriptor = definePlugin<JacobianNegativeOptions>({
  id: 'jacobian-negative',
  kind: 'Metric',
  summary: 'folding: percentage of voxels with Jacobian determinant < 0 (MambaMorph, strict)',
  reference: 'MambaMorph test_cross.py (spec §2.9)',
  options: { type: 'object', properties: {} },
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
