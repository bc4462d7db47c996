/**
 * dual-pyramid — two independent convolutional streams (moving, fixed) producing a feature pyramid at
 * full, 1/2, 1/4, 1/8 and 1/16 resolution (LLaMA-Reg's encoder; LLM-Morph's "DualPyramid", reading (a)
 * of the spec). Level 1 is ConvBlock(1→c0); each further level is a stride-2 conv (no activation)
 * followed by a ConvBlock, except the last, which is the stride-2 conv alone. LeakyReLU 0.2, no norm.
 *
 *   in  1×D×H×W            out per stream: c0×D×H×W, c1×D/2.., c2×D/4.., c3×D/8.., c4×D/16..
 */
import { convInitOption, definePlugin, type ConvInit, pluginModule, pyramidShape, pythonEntry, requireInput } from '@llmed/core';

export interface DualPyramidOptions { channels: number[]; shared: boolean; negativeSlope: number; init: ConvInit }

export const descriptor = definePlugin<DualPyramidOptions>({
  id: 'dual-pyramid',
  kind: 'Encoder',
  summary: 'two-stream CNN pyramid (full … 1/16), LLaMA-Reg / LLM-Morph encoder',
  reference: 'LLaMA-Reg §2 (spec seeds.md §1.2); LLM-Morph §2.1 (spec §2.2 a)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_dual_pyramid'),
  options: {
    type: 'object',
    properties: {
      channels: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 2, default: [16, 32, 64, 128, 256] },
      shared: { type: 'boolean', default: false, description: 'one set of weights for both images (Dual-PRNet++ style) instead of two streams' },
      negativeSlope: { type: 'number', minimum: 0, default: 0.2 },
      init: convInitOption,
    },
  },
  shape(inputs, o) {
    return pyramidShape(requireInput(inputs, 'image', 'dual-pyramid'), o.channels);
  },
  example: { options: { channels: [2, 4, 4, 8, 8] }, inputs: { image: { type: 'volume', channels: 1, spatial: [16, 16, 16] } } },
});

export default pluginModule(descriptor);
