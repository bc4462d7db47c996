/**
 * vqa-accuracy — closed-ended VQA accuracy: the share of questions whose predicted option letter is the
 * correct one, with the chance level of the option count beside it
 *
 * Variant 'letter' (default; Med3DLLM's exact match of the predicted letter, case-insensitive): the
 * prediction is read as a letter when the trimmed answer is one letter of the options, alone or followed
 * by '.', ')', ':' or a space and more text, optionally in '(' ')' — "B", "b.", "(B) left", "B: left
 * kidney". Anything else is a miss and counted as `unparsed`. Variant 'm3d' (M3D-LaMed's closed-ended
 * rule): a hit when "<correct letter>." occurs anywhere in the answer, case-sensitive (so an answer that
 * lists every option scores). The correct letter is the first reference, read the same way.
 * Chance = mean over questions of 1/k, k the question's number of choices (its `choices`, else the
 * `optionCount` option): what always guessing uniformly scores in expectation.
 */
import { definePlugin, pluginModule, type TextMetricInput, type TextMetricResult, type TextMetricRuntime } from '@llmed/core';

export interface VqaAccuracyOptions { match: 'letter' | 'm3d'; optionCount: number }

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** The option letter an answer names under the 'letter' rule, or undefined. */
export function answerLetter(text: string, optionCount: number): string | undefined {
  const m = /^\s*\(?([A-Za-z])(?:[.):]|\s|$)/.exec(text);
  if (!m) return undefined;
  const l = m[1].toUpperCase();
  return LETTERS.indexOf(l) < optionCount ? l : undefined;
}

export function vqaAccuracy(input: TextMetricInput, o: VqaAccuracyOptions): TextMetricResult {
  const perSample: number[] = [];
  let chance = 0;
  let unparsed = 0;
  for (const s of input.samples) {
    const k = s.choices?.length ?? o.optionCount;
    chance += 1 / k;
    const truth = answerLetter(s.references[0] ?? '', k);
    if (truth === undefined) throw new RangeError(`reference answer ${JSON.stringify(s.references[0])} is not an option letter of ${k} options`);
    if (o.match === 'm3d') {
      perSample.push(s.candidate.includes(`${truth}.`) ? 1 : 0);
      continue;
    }
    const got = answerLetter(s.candidate, k);
    if (got === undefined) unparsed++;
    perSample.push(got === truth ? 1 : 0);
  }
  const n = perSample.length;
  const accuracy = n ? perSample.reduce((a, b) => a + b, 0) / n : NaN;
  return {
    value: accuracy,
    outputs: { accuracy, chance: n ? chance / n : NaN },
    perSample,
    unit: 'fraction',
    higherIsBetter: true,
    counts: { unparsed, questions: n },
  };
}

export const runtime: TextMetricRuntime<VqaAccuracyOptions> = { text: true, aggregate: 'mean', computeText: (input, o) => vqaAccuracy(input, o) };

export const descriptor = definePlugin<VqaAccuracyOptions>({
  id: 'vqa-accuracy',
  kind: 'Metric',
  summary: "closed-ended VQA accuracy by option letter (Med3DLLM exact match, or M3D's 'X.' substring rule), with the chance level 1/k",
  reference: 'Med3DLLM eval (spec §3.8); M3D-LaMed closed-ended VQA rule',
  options: {
    type: 'object',
    properties: {
      match: { enum: ['letter', 'm3d'], default: 'letter', description: "'letter': the answer's leading option letter must be the correct one (case-insensitive); 'm3d': the correct '<letter>.' appears anywhere in the answer" },
      optionCount: { type: 'integer', minimum: 2, maximum: 26, default: 4, description: 'number of options of a question that lists no choices (gives the chance level 1/k)' },
    },
  },
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
