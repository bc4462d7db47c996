/** Building TextMetricInput from the plain arrays test cases and loaders hold. */
import type { TextMetricInput } from '@llmed/core';

/**
 * `candidates[i]` against `references[i]`, which is one string or a list of strings (several references).
 * `choices[i]` (VQA) lists the options of item i.
 */
export function textInput(candidates: readonly string[], references: readonly (string | readonly string[])[], choices?: readonly (readonly string[])[]): TextMetricInput {
  if (candidates.length !== references.length) throw new RangeError(`${candidates.length} candidates but ${references.length} references`);
  if (choices && choices.length !== candidates.length) throw new RangeError(`${candidates.length} candidates but ${choices.length} option lists`);
  return {
    samples: candidates.map((candidate, i) => ({
      candidate,
      references: typeof references[i] === 'string' ? [references[i] as string] : [...(references[i] as readonly string[])],
      ...(choices ? { choices: [...choices[i]] } : {}),
    })),
  };
}
