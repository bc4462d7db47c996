/**
 * jacobian-nonpositive — % of voxels where the transformation folds (det J ≤ 0)
 *
 * value = 100 · #{det J ≤ 0} / #voxels, det J = det(I + ∇u) with np.gradient stencils (central inside,
 * one-sided at the borders) on the field in voxels. LLaMA-Reg's convention (its code stores the fraction,
 * the paper prints %); MambaMorph's strict count is `jacobian-negative`.
 */
import { definePlugin, pluginModule } from '@llmed/core';
import { fieldJacobian, foldingPercent, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';

export type JacobianNonpositiveOptions = Record<string, never>;

export const runtime: MetricRuntime<JacobianNonpositiveOptions> = {
  compute(input: MetricInput): MetricResult {
    const { detJ } = fieldJacobian('jacobian-nonpositive', input);
    return { value: foldingPercent(detJ), unit: '%', higherIsBetter: false };
  },
};

export const descriptor = definePlugin<JacobianNonpositiveOptions>({
  id: 'jacobian-nonpositive',
  kind: 'Metric',
  summary: 'folding: percentage of voxels with Jacobian determinant ≤ 0 (LLaMA-Reg convention)',
  reference: 'LLaMA-Reg §1.7 (spec), VoxelMorph jacobian_determinant',
  options: { type: 'object', properties: {} },
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
