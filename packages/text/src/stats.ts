/**
 * Uncertainty for text metrics: a seeded percentile bootstrap over samples and a paired approximate
 * randomisation test between two systems scored on the same samples.
 *
 * Both take the metric as a statistic of a resampled (or swapped) test set rather than of per-sample
 * scores, because BLEU and CIDEr-D are corpus statistics (their value is not the mean of sentence values),
 * and resampling samples then recomputing the corpus value is what an interval of a corpus metric means.
 * Mean-of-sample metrics use the `...Mean` shortcuts, which are the same computation on per-sample values.
 */
import { mulberry32 } from '@llmed/core';

/**
 * The resampling generator: @llmed/core's mulberry32 with the seed mixed by the golden-ratio constant, so
 * seed 0 of the bootstrap is not the stream seed 0 gives elsewhere (the recorded intervals use this).
 */
export function seededRandom(seed: number): () => number {
  return mulberry32((seed >>> 0) ^ 0x9e3779b9);
}

export interface BootstrapOptions {
  /** Number of resamples (default 1000). */
  resamples?: number;
  /** Seed of the resampling (default 0): the same seed gives the same interval. */
  seed?: number;
  /** Central coverage (default 0.95). */
  level?: number;
}

export interface Interval {
  value: number;
  lo: number;
  hi: number;
  level: number;
  resamples: number;
  seed: number;
}

/** Linear-interpolated quantile of sorted values (numpy's default 'linear' method). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * Percentile bootstrap: draw n sample indices with replacement `resamples` times, evaluate `statistic`
 * on each draw, and return the (1-level)/2 and (1+level)/2 quantiles. NaN statistics (a draw where the
 * metric is undefined) are left out of the quantiles.
 */
export function bootstrapInterval(n: number, statistic: (indices: Int32Array) => number, opts: BootstrapOptions = {}): Interval {
  const resamples = opts.resamples ?? 1000;
  const seed = opts.seed ?? 0;
  const level = opts.level ?? 0.95;
  const identity = Int32Array.from({ length: n }, (_, i) => i);
  const value = statistic(identity);
  if (n === 0) return { value, lo: NaN, hi: NaN, level, resamples, seed };
  const rand = seededRandom(seed);
  const stats: number[] = [];
  const idx = new Int32Array(n);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) idx[i] = Math.floor(rand() * n);
    const s = statistic(idx);
    if (Number.isFinite(s)) stats.push(s);
  }
  stats.sort((a, b) => a - b);
  return { value, lo: quantileSorted(stats, (1 - level) / 2), hi: quantileSorted(stats, (1 + level) / 2), level, resamples, seed };
}

const finiteMean = (values: ArrayLike<number>, idx: ArrayLike<number>): number => {
  let s = 0;
  let k = 0;
  for (let i = 0; i < idx.length; i++) {
    const v = values[idx[i]];
    if (Number.isFinite(v)) { s += v; k++; }
  }
  return k === 0 ? NaN : s / k;
};

/** Bootstrap interval of the mean of per-sample values (NaN samples, e.g. unparseable, left out). */
export function bootstrapMean(values: readonly number[], opts: BootstrapOptions = {}): Interval {
  return bootstrapInterval(values.length, (idx) => finiteMean(values, idx), opts);
}

export interface RandomisationOptions {
  /** Number of random swap patterns (default 10000). */
  trials?: number;
  seed?: number;
}

export interface RandomisationResult {
  /** statistic(A) − statistic(B) on the unswapped systems. */
  difference: number;
  /** Two-sided p-value (count of |d*| ≥ |d| + 1) / (trials + 1): never 0, 1 for identical systems. */
  pValue: number;
  trials: number;
  seed: number;
}

/**
 * Paired approximate randomisation (Noreen 1989; the test sacrebleu's paired-ar and MT papers use): under
 * the null hypothesis that the systems are exchangeable, swapping the two systems' outputs on any subset
 * of samples leaves the distribution of the difference unchanged. `difference(swap)` returns the metric
 * of system A minus that of system B after swapping the samples where `swap[i]` is 1.
 */
export function pairedRandomisationTest(n: number, difference: (swap: Uint8Array) => number, opts: RandomisationOptions = {}): RandomisationResult {
  const trials = opts.trials ?? 10000;
  const seed = opts.seed ?? 0;
  const observed = difference(new Uint8Array(n));
  const rand = seededRandom(seed);
  const swap = new Uint8Array(n);
  let extreme = 0;
  // A tiny tolerance so a permuted difference equal to the observed one up to rounding counts as extreme.
  const bound = Math.abs(observed) - 1e-12 * Math.max(1, Math.abs(observed));
  for (let t = 0; t < trials; t++) {
    for (let i = 0; i < n; i++) swap[i] = rand() < 0.5 ? 1 : 0;
    if (Math.abs(difference(swap)) >= bound) extreme++;
  }
  return { difference: observed, pValue: (extreme + 1) / (trials + 1), trials, seed };
}

/** Randomisation test on the means of paired per-sample values (samples NaN in either system left out). */
export function pairedRandomisationMean(a: readonly number[], b: readonly number[], opts: RandomisationOptions = {}): RandomisationResult {
  if (a.length !== b.length) throw new RangeError(`paired test needs the same samples: ${a.length} vs ${b.length} values`);
  const keep: number[] = [];
  for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i]) && Number.isFinite(b[i])) keep.push(i);
  const d = keep.map((i) => a[i] - b[i]);
  // Swapping sample i negates its difference, so the statistic is the mean of ±d_i.
  return pairedRandomisationTest(d.length, (swap) => {
    let s = 0;
    for (let i = 0; i < d.length; i++) s += swap[i] ? -d[i] : d[i];
    return d.length === 0 ? 0 : s / d.length;
  }, opts);
}
