/**
 * llama2 — LLaMA 2 decoder layer(s) as a frozen token encoder, loaded from a local Hugging Face checkpoint folder.
 * The family (accepted model types, Hugging Face repo, LoRA targets, transformers classes, defaults:
 * checkpoints/Llama-2-7b-hf, layers [31], hidden size 4096) is described once, in ../family.json, which the Python side reads too.
 *
 *   in  L×hiddenSize tokens   out  L×hiddenSize tokens
 */
import { llmBackboneDescriptor, pluginModule, pythonEntry, readLLMFamily } from '@llmed/core';

export const descriptor = llmBackboneDescriptor({
  ...readLLMFamily(import.meta.url, '../family.json'),
  python: pythonEntry(import.meta.url, '../python', 'llmed_llama2'),
  reference: 'LLaMA-Reg §2.1 (layer 31 of LLaMA-2-7B, spec §1.2); LLM-Morph Table 3',
});

export default pluginModule(descriptor);
