/** n-gram counting shared by BLEU and CIDEr-D. Keys join the tokens with U+0001, which no tokeniser emits. */
export const NGRAM_SEP = '\u0001';

/** Counts of the n-grams of exactly order n. */
export function ngramCounts(tokens: readonly string[], n: number): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = tokens.slice(i, i + n).join(NGRAM_SEP);
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

/** Counts of all n-grams of orders 1..maxN in one map (the order is the key's token count). */
export function allNgramCounts(tokens: readonly string[], maxN: number): Map<string, number> {
  const out = new Map<string, number>();
  for (let n = 1; n <= maxN; n++) for (const [k, c] of ngramCounts(tokens, n)) out.set(k, c);
  return out;
}

export const ngramOrder = (key: string): number => key.split(NGRAM_SEP).length;

/** Length of the longest common subsequence (ROUGE-L), O(|a|·|b|) time, O(|b|) memory. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  let prev = new Int32Array(b.length + 1);
  let cur = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}
