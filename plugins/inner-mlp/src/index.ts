/**
 * inner-mlp — LLaMA-Reg's inner adapter between two LLM passes: Linear(W→hidden) → Linear(hidden→W),
 * no activation (the released code's 4096→1024→4096 bottleneck, hidden = mlp_mul·2·16·C = 1024).
 *
 *   in  L×W   out  L×(out ?? W)
 */
import { definePlugin, pluginModule, pythonEntry, requireInput } from '@llmed/core';

export interface InnerMlpOptions { hidden: number; out?: number; activation: 'none' | 'gelu' }

export const descriptor = definePlugin<InnerMlpOptions>({
  id: 'inner-mlp',
  kind: 'Adapter',
  summary: 'two-linear adapter between LLM layers (LLaMA-Reg inner adapter)',
  reference: 'LLaMA-Reg §2.1 (spec §1.2 llama_block 3-4, §1.12 item 8)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_inner_mlp'),
  options: {
    type: 'object',
    properties: {
      hidden: { type: 'integer', minimum: 1, default: 1024 },
      out: { type: 'integer', minimum: 1, description: 'output width (default: input width)' },
      activation: { enum: ['none', 'gelu'], default: 'none' },
    },
  },
  // Pure: an absent `out` means the input width, which the output shape says; the options stay as given
  // and the Python factory reads the same width from its tokens input.
  shape(inputs, o) {
    const t = requireInput(inputs, 'tokens', 'inner-mlp');
    return { ...t, width: o.out ?? t.width };
  },
  example: { options: { hidden: 16 }, inputs: { tokens: { type: 'tokens', length: 8, width: 64, grid: [2, 2, 2] } } },
});

export default pluginModule(descriptor);
