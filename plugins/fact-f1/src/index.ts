/**
 * fact-f1 — F1 of the findings a generated report states against the findings its reference states, per
 * category, on the report stand-in's grammar (llmed's own metric; not a published one)
 *
 * Both texts go through the stand-in's fact parser (@llmed/reports `parseReport`, the inverse of the
 * grammar that wrote the references), which turns each sentence into facts — a lesion in an organ with
 * its size bin, density and count, a stone, an effusion, an enlarged organ, the contrast phase, "normal".
 * Facts become atoms per category and are compared as sets per sample: TP = atoms in both, FP = atoms only
 * in the candidate, FN = atoms only in the reference. The value is micro-averaged over every atom of every
 * sample (F1 = 2TP / (2TP + FP + FN)); `fact-f1.<category>` are the same per category (NaN where neither
 * side has an atom of it); per sample, the sample's own micro F1 (1 when both sides state nothing).
 * A sentence the parser cannot read adds nothing and is counted in `unparsed`. Meaningful only on text
 * written in the stand-in's vocabulary: on radiologists' reports it measures nothing.
 */
import { definePlugin, pluginModule, type TextMetricInput, type TextMetricResult, type TextMetricRuntime } from '@llmed/core';
import { FACT_F1_CATEGORIES, factF1 } from '@llmed/reports';

export type FactF1Options = Record<string, never>;

export function factF1Metric(input: TextMetricInput): TextMetricResult {
  const pairs = input.samples.map((s) => ({ reference: s.references[0] ?? '', candidate: s.candidate }));
  const all = factF1(pairs);
  const perSample = pairs.map((p) => factF1([p]).overall.f1 ?? 1);
  const outputs: Record<string, number> = { 'fact-f1': all.overall.f1 ?? NaN };
  for (const c of FACT_F1_CATEGORIES) outputs[`fact-f1.${c}`] = all.perCategory[c].f1 ?? NaN;
  return { value: outputs['fact-f1'], outputs, perSample, unit: 'fraction', higherIsBetter: true, counts: { unparsed: all.unparsed } };
}

export const runtime: TextMetricRuntime<FactF1Options> = { text: true, aggregate: 'corpus', computeText: (input) => factF1Metric(input) };

export const descriptor = definePlugin<FactF1Options>({
  id: 'fact-f1',
  kind: 'Metric',
  summary: "F1 of the facts parsed from the generated vs the reference report, per category (the report stand-in's grammar; llmed's own metric)",
  reference: 'llmed: @llmed/reports fact grammar and parser (packages/reports/src/standin/facts.ts)',
  options: { type: 'object', properties: {} },
  runtime,
  example: {
    options: {},
    inputs: {
      candidates: ['A calculus is present in the left kidney. No abnormality of the liver is seen.'],
      references: ['A calculus is present in the left kidney. The spleen is unremarkable.'],
    },
  },
});

export default pluginModule(descriptor);
