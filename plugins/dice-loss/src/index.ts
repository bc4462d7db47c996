/**
 * dice-loss — soft Dice loss on one-hot moving labels warped (trilinearly) by the final field
 *
 * L = −mean over labels l ∉ ignore of 2Σ(ŝ_l·s_l) / max(Σ(ŝ_l + s_l), 1e-5), ŝ = one-hot moving labels warped with trilinear interpolation, s = one-hot fixed labels.
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';

export const descriptor = definePlugin({
  id: 'dice-loss',
  kind: 'Loss',
  summary: 'soft Dice loss on one-hot moving labels warped (trilinearly) by the final field',
  reference: 'LLM-Morph §2.4 (spec §2.6); MambaMorph Dice loss',
  python: pythonEntry(import.meta.url, '../python', 'llmed_dice_loss'),
  options: { type: 'object', properties: { ignore: { type: 'array', items: { type: 'integer' }, default: [0] }, scaleWeights: { type: 'array', items: { type: 'number', minimum: 0 }, default: [1] } } },
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
