/**
 * tokens — the moving and fixed 1/16 feature maps concatenated along channels ([moving, fixed]),
 * flattened in raster order (last NIfTI axis… see below) into L = d·h·w tokens of width 2·C, plus an
 * optional learnable position embedding (zeros at init), in the visual feature space before Adapter0.
 *
 *   in  pyramid level 1/16: C×d×h×w per stream      out  L×2C tokens, grid d×h×w
 *
 * Torch holds the map as (N, 2C, K, J, I) and flattens it "N C K J I → N (K J I) C", so the NIfTI i axis
 * varies fastest along the sequence.
 */
import { definePlugin, pluginModule, pythonEntry, requireInput, ShapeMismatch, type Vec3 } from '@llmed/core';

export interface TokensOptions { grid?: Vec3; positionEmbedding: boolean; level: number }

export const descriptor = definePlugin<TokensOptions>({
  id: 'tokens',
  kind: 'Adapter',
  summary: 'concatenate the two coarsest feature maps into a token sequence (+ learnable position embedding)',
  reference: 'LLaMA-Reg §2.1 (spec §1.2 T1-T3); LLaMA-Reg Ablation 2 (w/o Pos. Emb)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_tokens'),
  options: {
    type: 'object',
    properties: {
      grid: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 3, maxItems: 3, description: 'expected token grid (checked against the coarsest feature map)' },
      positionEmbedding: { type: 'boolean', default: true },
      level: { type: 'integer', default: -1, description: 'pyramid level to tokenise (-1 = coarsest)' },
    },
  },
  shape(inputs, o) {
    const p = requireInput(inputs, 'pyramid', 'tokens');
    const lvl = p.levels.at(o.level);
    if (!lvl) throw new ShapeMismatch(`level ${o.level} does not exist in a ${p.levels.length}-level pyramid`, { option: 'level', input: 'pyramid' });
    if (o.grid && o.grid.some((n, i) => n !== lvl.spatial[i])) {
      throw new ShapeMismatch(`token grid ${o.grid.join('×')} does not match the 1/${lvl.scale} feature map ${lvl.spatial.join('×')}`, { option: 'grid', input: 'pyramid' });
    }
    return { type: 'tokens', length: lvl.spatial[0] * lvl.spatial[1] * lvl.spatial[2], width: 2 * lvl.channels, grid: [...lvl.spatial] as Vec3 };
  },
  example: {
    options: { positionEmbedding: true },
    inputs: { pyramid: { type: 'pyramid', levels: [{ scale: 1, channels: 2, spatial: [16, 16, 16] }, { scale: 16, channels: 8, spatial: [1, 2, 2] }] } },
  },
});

export default pluginModule(descriptor);
