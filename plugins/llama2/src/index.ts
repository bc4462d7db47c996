/**
 * llama2 — LLaMA 2 decoder layer(s) as a frozen token encoder, loaded from a local Hugging Face checkpoint folder.
 * Defaults: checkpoints/Llama-2-7b-hf, layers [31], hidden size 4096 (32 layers). Everything else lives in llmBackboneDescriptor.
 *
 *   in  L×4096 tokens   out  L×4096 tokens
 */
import { llmBackboneDescriptor, pluginModule, pythonEntry } from '@llmed/core';

export const descriptor = llmBackboneDescriptor({
  id: 'llama2',
  title: 'LLaMA 2',
  modelTypes: ['llama'],
  defaults: { checkpoint: 'checkpoints/Llama-2-7b-hf', layers: [31], hiddenSize: 4096, numLayers: 32 },
  huggingFaceRepo: 'meta-llama/Llama-2-7b-hf',
  loraTargets: ['q_proj', 'k_proj', 'v_proj'],
  python: pythonEntry(import.meta.url, '../python', 'llmed_llama2'),
  reference: 'LLaMA-Reg §2.1 (layer 31 of LLaMA-2-7B, spec §1.2); LLM-Morph Table 3',
});

export default pluginModule(descriptor);
