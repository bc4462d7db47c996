/**
 * llama3 — LLaMA 3 decoder layer(s) as a frozen token encoder, loaded from a local Hugging Face checkpoint folder.
 * The family (accepted model types, Hugging Face repo, LoRA targets, transformers classes, defaults:
 * checkpoints/Meta-Llama-3-8B, layers [15], hidden size 4096) is described once, in ../family.json, which the Python side reads too.
 *
 *   in  L×hiddenSize tokens   out  L×hiddenSize tokens
 */
import { llmBackboneDescriptor, pluginModule, pythonEntry, readLLMFamily } from '@llmed/core';

export const descriptor = llmBackboneDescriptor({
  ...readLLMFamily(import.meta.url, '../family.json'),
  python: pythonEntry(import.meta.url, '../python', 'llmed_llama3'),
  reference: 'LLM-Morph §2.2 (layers 15 and 16 of LLaMA-3-8B, LoRA r=64 on q,k,v; spec §2.4)',
});

export default pluginModule(descriptor);
