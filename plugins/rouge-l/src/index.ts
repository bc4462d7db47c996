/**
 * rouge-l — ROUGE-L F1 (Lin 2004) per sample, averaged, as Google's rouge-score computes `rougeL`
 *
 * Variant: sentence-level LCS over the whole report (rouge-score's `rougeL`, not the summary-level
 * `rougeLsum`), stemming off. With L the length of the longest common subsequence of candidate and
 * reference tokens: P = L/|candidate|, R = L/|reference|, F = 2PR/(P+R) (β = 1), 0 when either text has
 * no token. Several references: the one with the highest F (rouge-score's `score_multi`). The value is the
 * plain mean of per-sample F over samples (rouge-score's BootstrapAggregator reports a bootstrap mean;
 * intervals here come from @llmed/text instead). Tokenisation: 'rouge' (default; rouge-score's own: lower
 * case, every character outside [a-z0-9] becomes a separator, so "3.5" is two tokens) or any other.
 */
import { definePlugin, pluginModule, type TextMetricInput, type TextMetricResult, type TextMetricRuntime } from '@llmed/core';
import { lcsLength, tokenise, tokeniseOption, type Tokeniser } from '@llmed/text';

export interface RougeLOptions { tokenise: Tokeniser }

function prf(cand: string[], ref: string[]): [number, number, number] {
  if (cand.length === 0 || ref.length === 0) return [0, 0, 0];
  const l = lcsLength(ref, cand);
  const p = l / cand.length;
  const r = l / ref.length;
  return [p, r, p + r > 0 ? (2 * p * r) / (p + r) : 0];
}

export function rougeL(input: TextMetricInput, o: RougeLOptions): TextMetricResult {
  const f: number[] = [];
  const ps: number[] = [];
  const rs: number[] = [];
  for (const s of input.samples) {
    const cand = tokenise(s.candidate, o.tokenise);
    let best: [number, number, number] = [0, 0, -1];
    for (const ref of s.references) {
      const x = prf(cand, tokenise(ref, o.tokenise));
      if (x[2] > best[2]) best = x;
    }
    if (best[2] < 0) best = [0, 0, 0];
    ps.push(best[0]);
    rs.push(best[1]);
    f.push(best[2]);
  }
  const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN);
  const outputs = { 'rouge-l': mean(f), 'rouge-l-precision': mean(ps), 'rouge-l-recall': mean(rs) };
  return { value: outputs['rouge-l'], outputs, perSample: f, unit: 'fraction', higherIsBetter: true };
}

export const runtime: TextMetricRuntime<RougeLOptions> = { text: true, aggregate: 'mean', computeText: (input, o) => rougeL(input, o) };

export const descriptor = definePlugin<RougeLOptions>({
  id: 'rouge-l',
  kind: 'Metric',
  summary: "ROUGE-L F1 (LCS, β=1) per sample, best reference, mean over samples (rouge-score's rougeL, no stemming)",
  reference: 'Lin 2004; rouge-score 0.1.2 rouge_scorer rougeL / score_multi (tests/cases.json)',
  options: { type: 'object', properties: { tokenise: tokeniseOption('rouge') } },
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
