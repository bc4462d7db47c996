/**
 * stage — output adapters 1..n: stage k (k = 0 coarsest) is Linear(W → base·4^k), a "pixel-unshuffle"
 * reshape of each token's vector into a 2^k×2^k×2^k block of base/2^k channels (so the token grid becomes
 * 2^k times finer), then ConvTranspose3d(k=2, s=2) halving the channels. With base 256 and a 1/16 token
 * grid: 128 ch @ 1/8, 64 @ 1/4, 32 @ 1/2, 16 @ full — the decoder's four stages.
 *
 *   in  L×W tokens on grid g (= 1/16 map)     out  stage k: (base/2^(k+1)) × (g·2^(k+1))
 */
import { convInitOption, definePlugin, type ConvInit, pluginModule, pythonEntry, requireInput, ShapeMismatch, type FeatureLevel, type Vec3 } from '@llmed/core';

export interface StageOptions { base: number; stages: number; init: ConvInit; silentStart: boolean }

export const descriptor = definePlugin<StageOptions>({
  id: 'stage',
  kind: 'Adapter',
  summary: 'stage adapters 1-4: linear, pixel-unshuffle reshape, ConvT ×2 (tokens → 1/8 … full maps)',
  reference: 'LLaMA-Reg §2.2 (spec §1.2 A1-A4); LLM-Morph decoding adapters (spec §2.2 item 4)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_stage'),
  options: {
    type: 'object',
    properties: {
      base: { type: 'integer', minimum: 1, default: 256, description: 'C_4: width of the coarsest adapter; ×4 per stage' },
      stages: { type: 'integer', minimum: 1, maximum: 6, default: 4 },
      init: convInitOption,
      silentStart: {
        type: 'boolean',
        default: true,
        description:
          'start every upsampler at zero weight, so the maps (the whole token / LLM path) enter the decoder at exactly 0 and grow only as training finds them useful (a zero-initialised branch, as in ControlNet or LoRA); with false they start He-initialised, the largest signal in every fusion at init, and the decoder first learns smooth fields from the tokens that ignore correspondence (bench/results/learning-diagnosis.md)',
      },
    },
  },
  shape(inputs, o) {
    const t = requireInput(inputs, 'tokens', 'stage');
    const p = requireInput(inputs, 'pyramid', 'stage');
    const coarsest = p.levels.at(-1)!;
    if (t.grid.some((n, i) => n !== coarsest.spatial[i])) {
      throw new ShapeMismatch(`token grid ${t.grid.join('×')} does not match the 1/${coarsest.scale} feature map ${coarsest.spatial.join('×')}`, { input: 'tokens' });
    }
    const stages: FeatureLevel[] = [];
    for (let k = 0; k < o.stages; k++) {
      const channelsAfterReshape = o.base / 2 ** k;
      if (!Number.isInteger(channelsAfterReshape / 2)) {
        throw new ShapeMismatch(`base ${o.base} is too small for ${o.stages} stages: stage ${k + 1} would have ${channelsAfterReshape} channels before its ConvT`, { option: 'base' });
      }
      const scale = coarsest.scale / 2 ** (k + 1);
      if (scale < 1) throw new ShapeMismatch(`${o.stages} stages go finer than full resolution for a 1/${coarsest.scale} token grid`, { option: 'stages' });
      stages.push({ scale, channels: channelsAfterReshape / 2, spatial: t.grid.map((n) => n * 2 ** (k + 1)) as Vec3 });
    }
    return { type: 'stages', stages };
  },
  example: {
    options: { base: 16 },
    inputs: {
      tokens: { type: 'tokens', length: 4, width: 64, grid: [1, 2, 2] },
      pyramid: { type: 'pyramid', levels: [1, 2, 4, 8, 16].map((s) => ({ scale: s, channels: 4, spatial: [16 / s, 32 / s, 32 / s] as Vec3 })) },
    },
  },
});

export default pluginModule(descriptor);
