/**
 * qwen2 — Qwen2 decoder layer(s) as a frozen token encoder, loaded from a local Hugging Face checkpoint folder.
 * Defaults: checkpoints/Qwen2-7B, layers [13], hidden size 3584 (28 layers). Everything else lives in llmBackboneDescriptor.
 *
 *   in  L×3584 tokens   out  L×3584 tokens
 */
import { llmBackboneDescriptor, pluginModule, pythonEntry } from '@llmed/core';

export const descriptor = llmBackboneDescriptor({
  id: 'qwen2',
  title: 'Qwen2',
  modelTypes: ['qwen2'],
  defaults: { checkpoint: 'checkpoints/Qwen2-7B', layers: [13], hiddenSize: 3584, numLayers: 28 },
  huggingFaceRepo: 'Qwen/Qwen2-7B',
  loraTargets: ['q_proj', 'k_proj', 'v_proj'],
  python: pythonEntry(import.meta.url, '../python', 'llmed_qwen2'),
  reference: 'LLM-Morph Table 3 (Qwen2-7B, width 3584; q/k/v with bias)',
});

export default pluginModule(descriptor);
