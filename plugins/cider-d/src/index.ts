/**
 * cider-d — CIDEr-D (Vedantam et al. 2015) as pycocoevalcap's `Cider` computes it (coco-caption's cider/)
 *
 * Each text becomes tf-idf vectors g_n over its n-grams, n = 1..4: g_n(w) = tf(w) · (log N − log max(1,
 * df(w))), with N the number of samples and df(w) the number of samples whose references (any of them)
 * contain w. The document frequencies come from the references of the evaluated set itself
 * (pycocoevalcap's only mode; the original CIDEr-D code can also load COCO-train frequencies — not
 * here), so a sample's score depends on the others, and on a single-sample set log N = 0. Per sample and
 * reference r: s_n = Σ_w min(g_n^c(w), g_n^r(w)) · g_n^r(w) / (‖g_n^c‖ ‖g_n^r‖) (the D's clipping; a zero
 * norm leaves the sum undivided) times exp(−(ℓ_c − ℓ_r)² / (2σ²)), σ = 6 (the D's length penalty), where
 * ℓ counts the text's bigrams, as pycocoevalcap does (not its words). CIDEr-D of the sample = 10 · mean_n
 * s_n averaged over its references; the value is the mean over samples. Texts are split by the `tokenise`
 * option (default 'words') and n-grams taken on those tokens, as pycocoevalcap does on space-separated
 * (PTB-tokenised) text. Not a fraction: identical texts score 10 only when every n-gram is rare enough.
 */
import { definePlugin, pluginModule, type TextMetricInput, type TextMetricResult, type TextMetricRuntime } from '@llmed/core';
import { allNgramCounts, ngramOrder, tokenise, tokeniseOption, type Tokeniser } from '@llmed/text';

export interface CiderDOptions { sigma: number; tokenise: Tokeniser }

const N = 4;

interface Vec { w: Map<string, number>[]; norm: number[]; length: number }

export function ciderD(input: TextMetricInput, o: CiderDOptions): TextMetricResult {
  const tok = (s: string) => tokenise(s, o.tokenise);
  const cand = input.samples.map((s) => allNgramCounts(tok(s.candidate), N));
  const refs = input.samples.map((s) => s.references.map((r) => allNgramCounts(tok(r), N)));
  const df = new Map<string, number>();
  for (const rs of refs) {
    const seen = new Set<string>();
    for (const r of rs) for (const g of r.keys()) seen.add(g);
    for (const g of seen) df.set(g, (df.get(g) ?? 0) + 1);
  }
  const logN = Math.log(input.samples.length);
  const vec = (counts: Map<string, number>): Vec => {
    const w = Array.from({ length: N }, () => new Map<string, number>());
    const sq = new Array<number>(N).fill(0);
    let length = 0;
    for (const [g, tf] of counts) {
      const n = ngramOrder(g) - 1;
      const v = tf * (logN - Math.log(Math.max(1, df.get(g) ?? 0)));
      w[n].set(g, v);
      sq[n] += v * v;
      if (n === 1) length += tf;
    }
    return { w, norm: sq.map(Math.sqrt), length };
  };
  const perSample: number[] = [];
  for (let i = 0; i < input.samples.length; i++) {
    const c = vec(cand[i]);
    const sum = new Array<number>(N).fill(0);
    for (const rc of refs[i]) {
      const r = vec(rc);
      const penalty = Math.exp(-((c.length - r.length) ** 2) / (2 * o.sigma ** 2));
      for (let n = 0; n < N; n++) {
        let v = 0;
        for (const [g, x] of c.w[n]) {
          const y = r.w[n].get(g) ?? 0;
          v += Math.min(x, y) * y;
        }
        if (c.norm[n] !== 0 && r.norm[n] !== 0) v /= c.norm[n] * r.norm[n];
        sum[n] += v * penalty;
      }
    }
    perSample.push(refs[i].length ? (10 * (sum.reduce((a, b) => a + b, 0) / N)) / refs[i].length : NaN);
  }
  const value = perSample.length ? perSample.reduce((a, b) => a + b, 0) / perSample.length : NaN;
  return { value, outputs: { 'cider-d': value }, perSample, unit: 'score', higherIsBetter: true };
}

export const runtime: TextMetricRuntime<CiderDOptions> = { text: true, aggregate: 'corpus', computeText: (input, o) => ciderD(input, o) };

export const descriptor = definePlugin<CiderDOptions>({
  id: 'cider-d',
  kind: 'Metric',
  summary: "CIDEr-D (pycocoevalcap Cider): clipped tf-idf n-gram cosine ×10 with a length penalty, df from the evaluated set's references",
  reference: 'Vedantam et al. 2015; pycocoevalcap 1.2 cider/cider_scorer.py (tests/cases.json)',
  options: {
    type: 'object',
    properties: {
      sigma: { type: 'number', exclusiveMinimum: 0, default: 6, description: 'σ of the Gaussian length penalty (pycocoevalcap: 6)' },
      tokenise: tokeniseOption('words'),
    },
  },
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
