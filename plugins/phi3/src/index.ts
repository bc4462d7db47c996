/**
 * phi3 — Phi-3 decoder layer(s) as a frozen token encoder, loaded from a local Hugging Face checkpoint folder.
 * Defaults: checkpoints/Phi-3-mini-4k-instruct, layers [15], hidden size 3072 (32 layers). Everything else lives in llmBackboneDescriptor.
 *
 *   in  L×3072 tokens   out  L×3072 tokens
 */
import { llmBackboneDescriptor, pluginModule, pythonEntry } from '@llmed/core';

export const descriptor = llmBackboneDescriptor({
  id: 'phi3',
  title: 'Phi-3',
  modelTypes: ['phi3', 'phi3_v'],
  defaults: { checkpoint: 'checkpoints/Phi-3-mini-4k-instruct', layers: [15], hiddenSize: 3072, numLayers: 32 },
  huggingFaceRepo: 'microsoft/Phi-3-mini-4k-instruct',
  loraTargets: ['qkv_proj'],
  python: pythonEntry(import.meta.url, '../python', 'llmed_phi3'),
  reference: 'LLM-Morph Table 3 (Phi-3-Vision, width 3072; fused qkv_proj)',
});

export default pluginModule(descriptor);
