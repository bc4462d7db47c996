/**
 * voxelmorph-encoder — the encoder half of a VoxelMorph-style U-Net (Balakrishnan et al., TMI 2019): one
 * network sees both images, concatenated along channels ([moving, fixed]). Level 0 is a 3×3×3 conv +
 * LeakyReLU(0.2) at full resolution; every further level max-pools by 2 and applies one conv + LeakyReLU.
 * Defaults follow VoxelMorph's encoder widths (16, 32, 32, 32) plus a 32-channel 1/16 level, which stands
 * in for VoxelMorph's first decoder conv at the bottleneck (llmed's composition sends the 1/16 level
 * through the token path).
 *
 * The pyramid is joint, so both streams of the Encoder contract are the same tensors: a `tokens` node
 * then sees the 1/16 features twice (harmless: its linear map just gets duplicated input), and the
 * `voxelmorph-decoder` takes one skip per level (its `skips: "moving"`).
 *
 *   in  C×D×H×W per image        out (both streams)  c0×D×H×W, c1×D/2.., …, c4×D/16..
 */
import { convInitOption, definePlugin, type ConvInit, pluginModule, pyramidShape, pythonEntry, requireInput } from '@llmed/core';

export interface VoxelMorphEncoderOptions { channels: number[]; negativeSlope: number; init: ConvInit }

export const descriptor = definePlugin<VoxelMorphEncoderOptions>({
  id: 'voxelmorph-encoder',
  kind: 'Encoder',
  summary: 'VoxelMorph-style U-Net encoder on the concatenated pair (one joint pyramid, full … 1/16)',
  reference: 'Balakrishnan et al., VoxelMorph (IEEE TMI 2019), U-Net encoder; LLM-Morph Ablation 1 baseline',
  python: pythonEntry(import.meta.url, '../python', 'llmed_voxelmorph_encoder'),
  options: {
    type: 'object',
    properties: {
      channels: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 2, default: [16, 32, 32, 32, 32], description: 'width of each level, full resolution first' },
      negativeSlope: { type: 'number', minimum: 0, default: 0.2 },
      init: convInitOption,
    },
  },
  shape(inputs, o) {
    return pyramidShape(requireInput(inputs, 'image', 'voxelmorph-encoder'), o.channels);
  },
  example: { options: { channels: [2, 4, 4, 8, 8] }, inputs: { image: { type: 'volume', channels: 1, spatial: [16, 16, 16] } } },
});

export default pluginModule(descriptor);
