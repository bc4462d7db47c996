/**
 * jacobian-nonpositive — % of voxels where the transformation folds (det J ≤ 0)
 *
 * value = 100 · #{det J ≤ 0} / #voxels, det J = det(I + ∇u) with np.gradient stencils (central inside,
 * one-sided at the borders) on the field in voxels. LLaMA-Reg's convention (its code stores the fraction,
 * the paper prints %); MambaMorph's strict count is `jacobian-negative`.
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';
import { fieldJacobian, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';
import { nonpositiveJacobianPercent } from './folding.ts';

export type JacobianNonpositiveOptions = Record<string, never>;

export { nonpositiveJacobianPercent } from './folding.ts';

export const runtime: MetricRuntime<JacobianNonpositiveOptions> = {
  compute(input: MetricInput): MetricResult {
    const { detJ } = fieldJacobian('jacobian-nonpositive', input);
    return { value: nonpositiveJacobianPercent(detJ), unit: '%', higherIsBetter: false };
  },
};

export const descriptor = definePlugin<JacobianNonpositiveOptions>({
  id: 'jacobian-nonpositive',
  kind: 'Metric',
  summary: 'folding: percentage of voxels with Jacobian determinant ≤ 0 (LLaMA-Reg convention)',
  reference: 'LLaMA-Reg §1.7 (spec), VoxelMorph jacobian_determinant',
  options: { type: 'object', properties: {} },
  python: pythonEntry(import.meta.url, '../python', 'llmed_jacobian_nonpositive', 'reference'),
  runtime,
  example: {
    // a field of ±0.6 voxels that changes quickly from voxel to voxel, so some voxels fold
    options: {},
    inputs: { field: { shape: [3, 6, 8, 10], sine: { seed: 1, scale: 0.6, offset: 0 } } },
  },
});

export default pluginModule(descriptor);
