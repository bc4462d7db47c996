/**
 * token-cross-entropy — next-token cross-entropy on the answer tokens only (paper Eq. 2, M3D's labels):
 *
 *   L = − (1/|A|) Σ_{t ∈ A} log p(x_{t+1} | x_{≤t}, image)
 *
 * A = the positions whose next token is part of the answer (the report or the option letter) or the
 * end-of-text token after it; prompt, image placeholders and padding are masked out (label −100).
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';

export interface TokenCrossEntropyOptions { labelSmoothing: number; ignoreIndex: number }

export const descriptor = definePlugin<TokenCrossEntropyOptions>({
  id: 'token-cross-entropy',
  kind: 'Loss',
  summary: 'next-token cross-entropy over the answer tokens only (prompt, image placeholders and padding masked)',
  reference: 'ViT3D-LLaMA3 report generation, Eq. 2; M3D CapDataset labels (spec §3.4)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_token_cross_entropy'),
  options: {
    type: 'object',
    properties: {
      labelSmoothing: { type: 'number', minimum: 0, maximum: 1, default: 0 },
      ignoreIndex: { type: 'integer', default: -100, description: 'label of masked positions' },
    },
  },
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
