/**
 * mse — mean squared error between the warped moving and the fixed image, per scale
 *
 * L = Σ_s w_s · mean((m∘φ_s − f_s)²), f_s the fixed image resized to scale s (trilinear), m∘φ_s the full-resolution moving image sampled at the scale-s grid.
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';

export const descriptor = definePlugin({
  id: 'mse',
  kind: 'Loss',
  summary: 'mean squared error between the warped moving and the fixed image, per scale',
  reference: 'LLaMA-Reg §2.4 (spec §1.5)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_mse'),
  options: { type: 'object', properties: { scaleWeights: { type: 'array', items: { type: 'number', minimum: 0 }, default: [0.25, 0.5, 1], description: 'weights of the fields coarse→fine (LLaMA-Reg 0.25/0.5/1); one number = final field only' } } },
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
