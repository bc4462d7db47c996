/**
 * diffusion — diffusion regulariser (Grad-l2) on the displacement fields, per scale
 *
 * R = Σ_s w_s · (mean(∂_i u²) + mean(∂_j u²) + mean(∂_k u²)) / 3 with forward differences in voxels of each field's own grid (VoxelMorph Grad("l2")); the config weight is λ.
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';

export const descriptor = definePlugin({
  id: 'diffusion',
  kind: 'Loss',
  summary: 'diffusion regulariser (Grad-l2) on the displacement fields, per scale',
  reference: 'LLaMA-Reg §2.4 (λ 0.04 knee, 0.02 brain); LLM-Morph (λ 0.1) (spec §1.5, §5)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_diffusion'),
  options: { type: 'object', properties: { penalty: { enum: ['l2', 'l1'], default: 'l2' }, scaleWeights: { type: 'array', items: { type: 'number', minimum: 0 }, default: [0.25, 0.5, 1], description: 'weights of the fields coarse→fine (LLaMA-Reg 0.25/0.5/1); one number = final field only' } } },
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
