/**
 * voxelmorph-decoder — the decoder half of a VoxelMorph-style U-Net, predicting one full-resolution
 * displacement field. It starts from the coarsest stage map (with `stage` adapters on a 1/16 token grid:
 * a linear map of the bottleneck tokens upsampled to 1/8 — VoxelMorph's bottleneck conv + upsampling),
 * then at every encoder scale from there down to full resolution: ×2 nearest upsampling (except at the
 * first), concatenation with the encoder skip (and any further stage map of that scale), one conv +
 * LeakyReLU(0.2). Then `final` full-resolution convs and a 3-channel flow conv initialised near zero
 * (N(0, 1e-5), as VoxelMorph). Defaults: decoder widths 32, 32, 32, 32 and final 32, 16, 16 (VoxelMorph's
 * dec_nf). `integrationSteps` > 0 treats the output as a stationary velocity field integrated by scaling
 * and squaring (diffeomorphic VoxelMorph); 0 (default) is a plain displacement field.
 *
 * With `block: []` and `stage` adapters the whole model is a VoxelMorph-style U-Net; put LLM layers in
 * the block and the same decoder reads an LLM-processed bottleneck.
 *
 *   in  pyramid (full … 1/16), stages (coarsest first)      out  one field at full resolution
 */
import { convInitOption, definePlugin, type ConvInit, pluginModule, pythonEntry, requireInput, ShapeMismatch, type Vec3 } from '@llmed/core';

export interface VoxelMorphDecoderOptions {
  channels: number[];
  final: number[];
  skips: 'moving' | 'both';
  integrationSteps: number;
  negativeSlope: number;
  init: ConvInit;
}

const levels = [1, 2, 4, 8, 16].map((s, i) => ({ scale: s, channels: [2, 4, 4, 8, 8][i], spatial: [16 / s, 32 / s, 32 / s] as Vec3 }));

export const descriptor = definePlugin<VoxelMorphDecoderOptions>({
  id: 'voxelmorph-decoder',
  kind: 'Decoder',
  summary: 'VoxelMorph-style U-Net decoder: upsample + skip + conv per scale, one full-resolution field',
  reference: 'Balakrishnan et al., VoxelMorph (IEEE TMI 2019), U-Net decoder; LLM-Morph Ablation 1 baseline',
  python: pythonEntry(import.meta.url, '../python', 'llmed_voxelmorph_decoder'),
  options: {
    type: 'object',
    properties: {
      channels: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 1, default: [32, 32, 32, 32], description: 'conv width per decoder scale, coarsest first (one per encoder scale from the first stage map down to full resolution)' },
      final: { type: 'array', items: { type: 'integer', minimum: 1 }, default: [32, 16, 16], description: 'extra full-resolution convs before the flow conv' },
      skips: { enum: ['moving', 'both'], default: 'moving', description: "'moving': one skip per scale (the joint pyramid of voxelmorph-encoder, whose streams are the same); 'both': moving and fixed skips (two-stream encoders)" },
      integrationSteps: { type: 'integer', minimum: 0, maximum: 12, default: 0, description: 'scaling-and-squaring steps (0: the output is the displacement field itself)' },
      negativeSlope: { type: 'number', minimum: 0, default: 0.2 },
      init: convInitOption,
    },
  },
  shape(inputs, o) {
    const image = requireInput(inputs, 'image', 'voxelmorph-decoder');
    const p = requireInput(inputs, 'pyramid', 'voxelmorph-decoder');
    const st = requireInput(inputs, 'stages', 'voxelmorph-decoder');
    if (st.stages.length === 0) throw new ShapeMismatch('needs at least one stage map from the stage adapters', { input: 'stages' });
    const first = st.stages[0];
    const seen = new Set<number>();
    for (const s of st.stages) {
      const lvl = p.levels.find((l) => l.scale === s.scale);
      if (!lvl) throw new ShapeMismatch(`stage map at 1/${s.scale} has no encoder level at the same scale`, { input: 'stages' });
      if (lvl.spatial.some((n, i) => n !== s.spatial[i])) {
        throw new ShapeMismatch(`stage map at 1/${s.scale} is ${s.spatial.join('×')} but the encoder level is ${lvl.spatial.join('×')}`, { input: 'stages' });
      }
      if (s.scale > first.scale || seen.has(s.scale)) throw new ShapeMismatch(`stage maps must start at the coarsest scale and not repeat one; got scales ${st.stages.map((x) => `1/${x.scale}`).join(', ')}`, { input: 'stages' });
      seen.add(s.scale);
    }
    const scales = p.levels.map((l) => l.scale).filter((s) => s <= first.scale).sort((a, b) => b - a);
    for (let i = 0; i < scales.length; i++) {
      if (scales[i] !== first.scale / 2 ** i) throw new ShapeMismatch(`the encoder scales from 1/${first.scale} down must halve to full resolution; got ${scales.map((s) => `1/${s}`).join(', ')}`, { input: 'pyramid' });
    }
    if (scales.at(-1) !== 1) throw new ShapeMismatch('the encoder has no full-resolution level for the last skip', { input: 'pyramid' });
    if (o.channels.length !== scales.length) {
      throw new ShapeMismatch(`${o.channels.length} decoder widths given, but the decoder runs ${scales.length} scales (1/${first.scale} … full)`, { option: 'channels' });
    }
    return { type: 'fields', fields: [{ scale: 1, spatial: [...image.spatial] as Vec3 }], steps: 1 };
  },
  example: {
    options: { channels: [4, 4, 4, 4], final: [4] },
    inputs: {
      image: { type: 'volume', channels: 1, spatial: [16, 32, 32] },
      pyramid: { type: 'pyramid', levels },
      // two stage maps: 1/8 (from the bottleneck) and an extra one joining at 1/4
      stages: { type: 'stages', stages: [{ scale: 8, channels: 8, spatial: [2, 4, 4] }, { scale: 4, channels: 4, spatial: [4, 8, 8] }] },
    },
  },
});

export default pluginModule(descriptor);
