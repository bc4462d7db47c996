/**
 * qwen2 — Qwen2 decoder layer(s) as a frozen token encoder, loaded from a local Hugging Face checkpoint folder.
 * The family (accepted model types, Hugging Face repo, LoRA targets, transformers classes, defaults:
 * checkpoints/Qwen2-7B, layers [13], hidden size 3584) is described once, in ../family.json, which the Python side reads too.
 *
 *   in  L×hiddenSize tokens   out  L×hiddenSize tokens
 */
import { llmBackboneDescriptor, pluginModule, pythonEntry, readLLMFamily } from '@llmed/core';

export const descriptor = llmBackboneDescriptor({
  ...readLLMFamily(import.meta.url, '../family.json'),
  python: pythonEntry(import.meta.url, '../python', 'llmed_qwen2'),
  reference: 'LLM-Morph Table 3 (Qwen2-7B, width 3584; q/k/v with bias)',
});

export default pluginModule(descriptor);
