/**
 * mse — mean squared error between the warped moving and the fixed image, per scale
 *
 * L = Σ_s w_s · mean((G_σ∗m∘φ_s − G_σ∗f_s)²), f_s the fixed image resized to scale s (trilinear), m∘φ_s the full-resolution moving image sampled at the scale-s grid,
 * G_σ an optional Gaussian (`smoothing`, voxels; 0 = plain MSE).
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';

export const descriptor = definePlugin({
  id: 'mse',
  kind: 'Loss',
  summary: 'mean squared error between the warped moving and the fixed image, per scale',
  reference: 'LLaMA-Reg §2.4 (spec §1.5)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_mse'),
  options: {
    type: 'object',
    properties: {
      scaleWeights: { type: 'array', items: { type: 'number', minimum: 0 }, default: [0.25, 0.5, 1], description: 'weights of the fields coarse→fine (LLaMA-Reg 0.25/0.5/1); one number = final field only' },
      smoothing: { type: 'number', minimum: 0, default: 0, description: 'σ (voxels of each scale) of a Gaussian applied to both images before the difference; 0 = LLaMA-Reg\'s plain MSE. σ = 1 removes the constant-offset blur shortcut but its minimiser keeps only about 2/3 of a sub-voxel field; σ = 0.5 halves the shortcut and allows nearly plain MSE\'s accuracy (bench/results/learning-diagnosis.md, first and fifth rounds)' },
    },
  },
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
