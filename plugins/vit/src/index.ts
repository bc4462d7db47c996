/**
 * vit — a stand-in of standard pre-norm transformer blocks (multi-head self-attention + GELU MLP),
 * trained from scratch: the "Standard ViT" ablation of LLaMA-Reg (width 4096, 4 heads, depth 2) and
 * "LEBs r/w ViTs" of LLM-Morph. Bidirectional attention, no positional encoding of its own.
 *
 *   in  L×width tokens   out  L×width tokens
 */
import { definePlugin, pluginModule, pythonEntry, requireInput, ShapeMismatch } from '@llmed/core';

export interface VitOptions { width: number; depth: number; heads: number; mlpRatio: number }

export const descriptor = definePlugin<VitOptions>({
  id: 'vit',
  kind: 'LLMBackbone',
  summary: 'standard transformer blocks trained from scratch (ViT ablation stand-in for the LLM layers)',
  reference: 'LLaMA-Reg Table 2 Ablation 1 (Standard ViT); LLM-Morph Table 2 Ablation 2',
  python: pythonEntry(import.meta.url, '../python', 'llmed_vit'),
  options: {
    type: 'object',
    properties: {
      width: { type: 'integer', minimum: 1, default: 4096 },
      depth: { type: 'integer', minimum: 1, default: 2 },
      heads: { type: 'integer', minimum: 1, default: 4 },
      mlpRatio: { type: 'number', exclusiveMinimum: 0, default: 4 },
    },
  },
  shape(inputs, o) {
    const t = requireInput(inputs, 'tokens', 'vit');
    if (o.width % o.heads !== 0) throw new ShapeMismatch(`width ${o.width} is not divisible by ${o.heads} heads`, { option: 'heads' });
    if (t.width !== o.width) throw new ShapeMismatch(`token width ${t.width} does not match the ViT width ${o.width}`, { option: 'width', input: 'tokens' });
    return { ...t };
  },
  example: { options: { width: 32, depth: 1, heads: 4 }, inputs: { tokens: { type: 'tokens', length: 8, width: 32, grid: [2, 2, 2] } } },
});

export default pluginModule(descriptor);
