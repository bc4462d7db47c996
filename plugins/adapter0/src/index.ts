/**
 * adapter0 — maps visual tokens to the LLM width: Linear(in→hidden) → [norm → act] → Linear(hidden→out)
 * → [norm → act]. LLaMA-Reg's Adapter0 is purely linear (norm 'none', activation 'none', 512→1024→4096);
 * LLM-Morph's adds InstanceNorm + LeakyReLU, the norm over the L tokens of each channel (not over features).
 *
 *   in  L×C_in   out  L×out
 */
import { definePlugin, pluginModule, pythonEntry, requireInput } from '@llmed/core';

export interface Adapter0Options { out: number; hidden?: number; norm: 'none' | 'instance'; activation: 'none' | 'leaky-relu'; negativeSlope: number }

export const descriptor = definePlugin<Adapter0Options>({
  id: 'adapter0',
  kind: 'Adapter',
  summary: 'two linears to the LLM width (LLM-Morph variant: + InstanceNorm over tokens, LeakyReLU)',
  reference: 'LLaMA-Reg §2.1 (spec §1.2 llama_block 0-1); LLM-Morph §2.2 (spec §2.4)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_adapter0'),
  options: {
    type: 'object',
    required: ['out'],
    properties: {
      out: { type: 'integer', minimum: 1, description: 'output width: the next LLM layer\'s hidden size' },
      hidden: { type: 'integer', minimum: 1, description: 'hidden width (default 2 × input width)' },
      norm: { enum: ['none', 'instance'], default: 'none' },
      activation: { enum: ['none', 'leaky-relu'], default: 'none' },
      negativeSlope: { type: 'number', minimum: 0, default: 0.2 },
    },
  },
  // Pure: the output width is `out`. An absent `hidden` (2 × the input width) does not change the output
  // shape, so the rule leaves it absent and the Python factory derives it from its tokens input.
  shape(inputs, o) {
    const t = requireInput(inputs, 'tokens', 'adapter0');
    return { ...t, width: o.out };
  },
  example: { options: { out: 64, norm: 'instance', activation: 'leaky-relu' }, inputs: { tokens: { type: 'tokens', length: 8, width: 16, grid: [2, 2, 2] } } },
});

export default pluginModule(descriptor);
