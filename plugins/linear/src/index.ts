/**
 * linear — Merlin-style linear adapter: one Linear map per token from the encoder's feature width to the
 * LLM's hidden size (optionally after averaging all tokens into one, Merlin's global feature).
 *
 *   in  L tokens × C   out  L tokens × outWidth (tokens: 'all'), or 1 token × outWidth (tokens: 'mean')
 *
 * normalise 'standardise': each feature channel is first centred and scaled by statistics fitted once on
 * the training features (a frozen encoder's cached ones; the report trainer fits them before the first
 * step, they are saved and exported with the adapter). Raw post-ReLU CNN features share a large positive
 * common part, and on them the adapter learns a constant before anything scan-specific.
 */
import { definePlugin, pluginModule, pythonEntry, requireInput } from '@llmed/core';

export interface LinearOptions { outWidth: number; bias: boolean; tokens: 'all' | 'mean'; normalise: 'none' | 'standardise' }

export const descriptor = definePlugin<LinearOptions>({
  id: 'linear',
  kind: 'Adapter',
  summary: "Merlin-style linear map of visual tokens to the LLM's width",
  reference: 'Merlin (Blankemeier et al. 2024), linear adapter of the image features to the language model',
  python: pythonEntry(import.meta.url, '../python', 'llmed_linear'),
  options: {
    type: 'object',
    properties: {
      outWidth: { type: 'integer', minimum: 1, default: 4096, description: "the LLM's hidden size" },
      bias: { type: 'boolean', default: true },
      tokens: { enum: ['all', 'mean'], default: 'all', description: "'mean' averages the tokens into one first (a global image feature)" },
      normalise: {
        enum: ['none', 'standardise'],
        default: 'none',
        description: "'standardise': per-channel mean and standard deviation of the training features, fitted once before the first step (needs a frozen encoder, whose features are cached), applied before the map",
      },
    },
  },
  shape(inputs, o) {
    const t = requireInput(inputs, 'tokens', 'linear');
    if (o.tokens === 'mean') return { type: 'tokens', length: 1, width: o.outWidth, grid: [1, 1, 1] };
    return { type: 'tokens', length: t.length, width: o.outWidth, grid: [...t.grid] };
  },
  example: {
    options: { outWidth: 6 },
    inputs: { tokens: { type: 'tokens', length: 4, width: 8, grid: [2, 2, 1] } },
  },
});

export default pluginModule(descriptor);
