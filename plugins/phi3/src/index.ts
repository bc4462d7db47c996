/**
 * phi3 — Phi-3 decoder layer(s) as a frozen token encoder, loaded from a local Hugging Face checkpoint folder.
 * The family (accepted model types, Hugging Face repo, LoRA targets, transformers classes, defaults:
 * checkpoints/Phi-3-mini-4k-instruct, layers [15], hidden size 3072) is described once, in ../family.json, which the Python side reads too.
 *
 *   in  L×hiddenSize tokens   out  L×hiddenSize tokens
 */
import { llmBackboneDescriptor, pluginModule, pythonEntry, readLLMFamily } from '@llmed/core';

export const descriptor = llmBackboneDescriptor({
  ...readLLMFamily(import.meta.url, '../family.json'),
  python: pythonEntry(import.meta.url, '../python', 'llmed_phi3'),
  reference: 'LLM-Morph Table 3 (Phi-3-Vision, width 3072; fused qkv_proj)',
});

export default pluginModule(descriptor);
