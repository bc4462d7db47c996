/**
 * meteor — METEOR (Banerjee & Lavie 2005; Lavie & Agarwal 2007) as nltk's `meteor_score` computes it
 *
 * Variant: nltk 3.10's METEOR, NOT the Java METEOR 1.5 that pycocoevalcap and the captioning papers run
 * (its paraphrase tables, function-word weights and tuned parameters score lower: on seven short report
 * pairs here Java 0.27 against nltk 0.44, about 1.6×; TOOLCHAIN.md saw about 2×), so a METEOR here is comparable only with nltk-METEOR numbers. Per sample and
 * reference: words are lower-cased and aligned in three stages, each on the words the previous left
 * unmatched — exact form, then Porter stem (nltk's PorterStemmer), then WordNet synonym (a reference word
 * among the lemma names of the candidate word's synsets, Princeton WordNet 3.0 from Debian's
 * `wordnet-base`; as in nltk, this stage sees the stems the stem stage left, not the words) — each stage taking candidate words from the last and the rightmost free reference
 * position, as nltk does. With m matches: P = m/|candidate|, R = m/|reference|,
 * Fmean = P·R/(α·P + (1−α)·R), penalty = γ·(chunks/m)^β (chunks: runs of adjacent matches in both texts),
 * score = Fmean·(1 − penalty), α 0.9, β 3, γ 0.5; 0 without a match. Several references: the best.
 * The value is the mean over samples. Tokenisation: `tokenise` (default 'words').
 */
import { definePlugin, LlmedError, pluginModule, type TextMetricInput, type TextMetricResult, type TextMetricRuntime } from '@llmed/core';
import { DEFAULT_WORDNET, hasWordnet, porterStem, tokenise, tokeniseOption, wordnet, type Tokeniser, type WordNet } from '@llmed/text';

export interface MeteorOptions { alpha: number; beta: number; gamma: number; tokenise: Tokeniser; wordnet: string }

type Enum = [index: number, word: string][];

/** One nltk alignment stage: matches (candidate index, reference index) and what is left of both. */
function matchStage(hyp: Enum, ref: Enum, same: (h: string) => Set<string> | string): { pairs: [number, number][]; hyp: Enum; ref: Enum } {
  const positions = new Map<string, number[]>();
  ref.forEach(([, w], j) => { const p = positions.get(w); if (p) p.push(j); else positions.set(w, [j]); });
  const pairs: [number, number][] = [];
  const usedH = new Set<number>();
  const usedR = new Set<number>();
  for (let i = hyp.length - 1; i >= 0; i--) {
    const key = same(hyp[i][1]);
    let bestJ = -1;
    let bestWord: string | undefined;
    for (const w of typeof key === 'string' ? [key] : key) {
      const p = positions.get(w);
      if (p && p.length && p[p.length - 1] > bestJ) { bestJ = p[p.length - 1]; bestWord = w; }
    }
    if (bestWord === undefined) continue;
    positions.get(bestWord)!.pop();
    usedH.add(i);
    usedR.add(bestJ);
    pairs.push([hyp[i][0], ref[bestJ][0]]);
  }
  return { pairs, hyp: hyp.filter((_, i) => !usedH.has(i)), ref: ref.filter((_, j) => !usedR.has(j)) };
}

function chunks(m: [number, number][]): number {
  let c = 1;
  for (let i = 0; i + 1 < m.length; i++) if (!(m[i + 1][0] === m[i][0] + 1 && m[i + 1][1] === m[i][1] + 1)) c++;
  return c;
}

export function singleMeteor(hypothesis: string[], reference: string[], wn: WordNet, o: Pick<MeteorOptions, 'alpha' | 'beta' | 'gamma'>): number {
  const h: Enum = hypothesis.map((w, i) => [i, w.toLowerCase()]);
  const r: Enum = reference.map((w, i) => [i, w.toLowerCase()]);
  const all: [number, number][] = [];
  const exact = matchStage(h, r, (w) => w);
  all.push(...exact.pairs);
  const stemmed = matchStage(exact.hyp.map(([i, w]) => [i, porterStem(w)]), exact.ref.map(([i, w]) => [i, porterStem(w)]), (w) => w);
  all.push(...stemmed.pairs);
  // nltk hands the stem stage's leftovers, stems and all, to the synonym stage: WordNet is asked about
  // "kidney" for "kidneys" (fine) but about "enlarg" for "enlarged" (nothing). Kept, to equal nltk.
  all.push(...matchStage(stemmed.hyp, stemmed.ref, (w) => wn.meteorSynonyms(w)).pairs);
  const m = all.length;
  if (m === 0 || hypothesis.length === 0 || reference.length === 0) return 0;
  all.sort((a, b) => a[0] - b[0]);
  const p = m / hypothesis.length;
  const rc = m / reference.length;
  const fmean = (p * rc) / (o.alpha * p + (1 - o.alpha) * rc);
  const penalty = o.gamma * (chunks(all) / m) ** o.beta;
  return (1 - penalty) * fmean;
}

export function meteor(input: TextMetricInput, o: MeteorOptions): TextMetricResult {
  if (!hasWordnet(o.wordnet)) {
    throw new LlmedError('data', `METEOR needs the WordNet 3.0 database files in ${o.wordnet}`, { where: o.wordnet, hint: "install Debian's wordnet-base (apt-get install wordnet-base), or set the meteor option wordnet to a folder holding index.*, data.* and *.exc" });
  }
  const wn = wordnet(o.wordnet);
  const perSample = input.samples.map((s) => {
    const hyp = tokenise(s.candidate, o.tokenise);
    return Math.max(...s.references.map((r) => singleMeteor(hyp, tokenise(r, o.tokenise), wn, o)));
  });
  const value = perSample.length ? perSample.reduce((a, b) => a + b, 0) / perSample.length : NaN;
  return { value, outputs: { meteor: value }, perSample, unit: 'fraction', higherIsBetter: true };
}

export const runtime: TextMetricRuntime<MeteorOptions> = { text: true, aggregate: 'mean', computeText: (input, o) => meteor(input, o) };

export const descriptor = definePlugin<MeteorOptions>({
  id: 'meteor',
  kind: 'Metric',
  summary: "nltk's METEOR (exact, Porter-stem and WordNet-synonym stages; α 0.9 β 3 γ 0.5), mean over samples — about 2× Java METEOR 1.5 on the same text",
  reference: 'Banerjee & Lavie 2005; nltk.translate.meteor_score 3.10.4 with WordNet 3.0 (Debian wordnet-base); tests/cases.json',
  options: {
    type: 'object',
    properties: {
      alpha: { type: 'number', minimum: 0, maximum: 1, default: 0.9, description: 'weight of precision against recall in Fmean' },
      beta: { type: 'number', minimum: 0, default: 3, description: 'shape of the fragmentation penalty' },
      gamma: { type: 'number', minimum: 0, maximum: 1, default: 0.5, description: 'weight of the fragmentation penalty' },
      tokenise: tokeniseOption('words'),
      wordnet: { type: 'string', default: DEFAULT_WORDNET, description: "folder of the WordNet 3.0 database files (Debian's wordnet-base)" },
    },
  },
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
