/**
 * llama3 — LLaMA 3 decoder layer(s) as a frozen token encoder, loaded from a local Hugging Face checkpoint folder.
 * Defaults: checkpoints/Meta-Llama-3-8B, layers [15], hidden size 4096 (32 layers). Everything else lives in llmBackboneDescriptor.
 *
 *   in  L×4096 tokens   out  L×4096 tokens
 */
import { llmBackboneDescriptor, pluginModule, pythonEntry } from '@llmed/core';

export const descriptor = llmBackboneDescriptor({
  id: 'llama3',
  title: 'LLaMA 3',
  modelTypes: ['llama'],
  defaults: { checkpoint: 'checkpoints/Meta-Llama-3-8B', layers: [15], hiddenSize: 4096, numLayers: 32 },
  huggingFaceRepo: 'meta-llama/Meta-Llama-3-8B',
  loraTargets: ['q_proj', 'k_proj', 'v_proj'],
  python: pythonEntry(import.meta.url, '../python', 'llmed_llama3'),
  reference: 'LLM-Morph §2.2 (layers 15 and 16 of LLaMA-3-8B, LoRA r=64 on q,k,v; spec §2.4)',
});

export default pluginModule(descriptor);
