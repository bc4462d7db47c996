/**
 * bleu — corpus BLEU-1 … BLEU-4 (Papineni et al. 2002), as nltk's `corpus_bleu` computes it
 *
 * Variant: corpus level. Clipped n-gram counts are summed over all samples before dividing, p_n =
 * Σ_s Σ_g min(c_s(g), max_r c_r(g)) / Σ_s Σ_g c_s(g); BLEU-N = BP · exp(Σ_{n≤N} log(p_n) / N) with
 * uniform weights; the brevity penalty BP = exp(1 − R/C) when C < R (else 1; 0 when C = 0), C the total
 * candidate length and R the sum over samples of the reference length closest to the candidate's
 * (the shorter on a tie). Smoothing 'none' (default): a zero unigram precision gives 0, a zero
 * higher-order one gives ~0 (nltk substitutes the smallest float and warns; sacrebleu returns 0);
 * 'floor': a zero count becomes 0.1 (nltk SmoothingFunction.method1, epsilon 0.1). Values are fractions
 * (sacrebleu prints ×100). Tokenisation: the `tokenise` option (default 'words', see @llmed/text); with
 * '13a' and no lowercasing, and smoothing 'none', it equals sacrebleu's default `corpus_bleu`.
 *
 * Per-sample scores are sentence BLEU-N (nltk `sentence_bleu`, same smoothing): for pages of single
 * samples, not averaged into the value. Intervals resample samples and recompute the corpus value.
 */
import { definePlugin, pluginModule, type TextMetricInput, type TextMetricResult, type TextMetricRuntime } from '@llmed/core';
import { ngramCounts, tokenise, tokeniseOption, type Tokeniser } from '@llmed/text';

export interface BleuOptions { order: number; smoothing: 'none' | 'floor'; tokenise: Tokeniser; lowercase: boolean }

/** Clipped matches and totals per order 1..maxN of one candidate against its references. */
function sampleStats(cand: string[], refs: string[][], maxN: number) {
  const matches = new Array<number>(maxN).fill(0);
  const totals = new Array<number>(maxN).fill(0);
  for (let n = 1; n <= maxN; n++) {
    const c = ngramCounts(cand, n);
    const maxRef = new Map<string, number>();
    for (const r of refs) for (const [g, k] of ngramCounts(r, n)) maxRef.set(g, Math.max(maxRef.get(g) ?? 0, k));
    for (const [g, k] of c) { matches[n - 1] += Math.min(k, maxRef.get(g) ?? 0); totals[n - 1] += k; }
  }
  let closest = refs.length ? refs[0].length : 0;
  for (const r of refs) {
    const d = Math.abs(r.length - cand.length);
    const best = Math.abs(closest - cand.length);
    if (d < best || (d === best && r.length < closest)) closest = r.length;
  }
  return { matches, totals, candLen: cand.length, refLen: closest };
}

/** Python's sys.float_info.min, what nltk puts in place of a zero precision. */
const SMALLEST_NORMAL = 2.2250738585072014e-308;

function brevity(c: number, r: number): number {
  if (c > r) return 1;
  if (c === 0) return 0;
  return Math.exp(1 - r / c);
}

/**
 * BLEU-N from summed statistics, as nltk: p_n's denominator is at least 1; no unigram match → 0; with
 * 'none' a zero higher-order precision becomes the smallest positive double (so BLEU is ~0 but finite).
 */
function bleuFrom(matches: number[], totals: number[], c: number, r: number, N: number, smoothing: BleuOptions['smoothing']): number {
  if (matches[0] === 0) return 0;
  let logSum = 0;
  for (let n = 0; n < N; n++) {
    const den = Math.max(1, totals[n]);
    let p = matches[n] / den;
    if (matches[n] === 0) p = smoothing === 'floor' ? 0.1 / den : SMALLEST_NORMAL;
    logSum += Math.log(p) / N;
  }
  return brevity(c, r) * Math.exp(logSum);
}

export function bleu(input: TextMetricInput, o: BleuOptions): TextMetricResult {
  const maxN = Math.max(4, o.order);
  const tok = (s: string) => tokenise(s, o.tokenise, { lowercase: o.lowercase });
  const M = new Array<number>(maxN).fill(0);
  const T = new Array<number>(maxN).fill(0);
  let C = 0;
  let R = 0;
  const perSample: number[] = [];
  for (const s of input.samples) {
    const st = sampleStats(tok(s.candidate), s.references.map(tok), maxN);
    // nltk floors each sample's denominator at 1 before summing (sacrebleu does not: they differ only on
    // candidates shorter than n tokens).
    for (let n = 0; n < maxN; n++) { M[n] += st.matches[n]; T[n] += Math.max(1, st.totals[n]); }
    C += st.candLen;
    R += st.refLen;
    perSample.push(bleuFrom(st.matches, st.totals, st.candLen, st.refLen, o.order, o.smoothing));
  }
  const outputs: Record<string, number> = {};
  for (let n = 1; n <= maxN; n++) outputs[`bleu-${n}`] = input.samples.length ? bleuFrom(M, T, C, R, n, o.smoothing) : NaN;
  outputs['brevity-penalty'] = brevity(C, R);
  return { value: outputs[`bleu-${o.order}`], outputs, perSample, unit: 'fraction', higherIsBetter: true };
}

export const runtime: TextMetricRuntime<BleuOptions> = { text: true, aggregate: 'corpus', computeText: (input, o) => bleu(input, o) };

export const descriptor = definePlugin<BleuOptions>({
  id: 'bleu',
  kind: 'Metric',
  summary: "corpus BLEU-1..4 (nltk corpus_bleu; sacrebleu's with tokenise '13a'): clipped n-gram precision, closest-reference brevity penalty",
  reference: 'Papineni et al. 2002; nltk.translate.bleu_score.corpus_bleu 3.10.4, sacrebleu 2.6.0 (tests/cases.json checks both)',
  options: {
    type: 'object',
    properties: {
      order: { type: 'integer', minimum: 1, maximum: 4, default: 4, description: 'N of the headline BLEU-N (bleu-1..bleu-4 are all output)' },
      smoothing: { enum: ['none', 'floor'], default: 'none', description: "'none': corpus BLEU as published; 'floor': zero n-gram counts become 0.1 (nltk method1), for sentence-level use" },
      tokenise: tokeniseOption('words'),
      lowercase: { type: 'boolean', default: false, description: "fold case after '13a' tokenisation (the other tokenisers lower-case already, except 'whitespace')" },
    },
  },
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
