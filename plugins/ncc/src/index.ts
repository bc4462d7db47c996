/**
 * ncc — negative local normalised cross-correlation (window n³), per scale
 *
 * L = −Σ_s w_s · mean over voxels of cc(p), cc = cov²/(var_m·var_f + ε) over the n³ window around p (VoxelMorph NCC).
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';

export const descriptor = definePlugin({
  id: 'ncc',
  kind: 'Loss',
  summary: 'negative local normalised cross-correlation (window n³), per scale',
  reference: 'VoxelMorph (Balakrishnan et al. 2019) NCC',
  python: pythonEntry(import.meta.url, '../python', 'llmed_ncc'),
  options: { type: 'object', properties: { window: { type: 'integer', minimum: 3, default: 9 }, scaleWeights: { type: 'array', items: { type: 'number', minimum: 0 }, default: [0.25, 0.5, 1], description: 'weights of the fields coarse→fine (LLaMA-Reg 0.25/0.5/1); one number = final field only' } } },
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
