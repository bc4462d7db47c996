/**
 * Intervals and paired tests of a text Metric plugin's headline value, whatever its aggregate: 'mean'
 * metrics resample their per-sample scores, 'corpus' metrics are recomputed on resampled test sets.
 */
import type { TextMetricInput, TextMetricResult, TextMetricRuntime, TextSample } from '@llmed/core';
import { bootstrapInterval, bootstrapMean, pairedRandomisationMean, pairedRandomisationTest, type BootstrapOptions, type Interval, type RandomisationOptions, type RandomisationResult } from './stats.ts';

function corpusValue(runtime: TextMetricRuntime<any>, samples: TextSample[], options: object): number {
  const r = runtime.computeText({ samples }, options);
  if (r instanceof Promise) throw new TypeError("a 'corpus' text metric must compute synchronously");
  return r.value;
}

/** 95 % (by default) seeded bootstrap interval of a metric's value on `input`, given its computed result. */
export function metricInterval(runtime: TextMetricRuntime<any>, input: TextMetricInput, result: TextMetricResult, options: object, opts: BootstrapOptions = {}): Interval {
  if (runtime.aggregate === 'mean') return { ...bootstrapMean(result.perSample, opts), value: result.value };
  const s = input.samples;
  return bootstrapInterval(s.length, (idx) => corpusValue(runtime, Array.from(idx, (i) => s[i]), options), opts);
}

/**
 * Paired randomisation test of system A against system B on the same samples (same order, same
 * references): 'mean' metrics from their per-sample scores, 'corpus' metrics recomputed per swap.
 */
export function metricPairedTest(
  runtime: TextMetricRuntime<any>,
  a: { input: TextMetricInput; result: TextMetricResult },
  b: { input: TextMetricInput; result: TextMetricResult },
  options: object,
  opts: RandomisationOptions = {},
): RandomisationResult {
  const sa = a.input.samples;
  const sb = b.input.samples;
  if (sa.length !== sb.length) throw new RangeError(`paired test needs the same samples: ${sa.length} vs ${sb.length}`);
  if (runtime.aggregate === 'mean') return pairedRandomisationMean(a.result.perSample, b.result.perSample, opts);
  return pairedRandomisationTest(sa.length, (swap) => {
    const x = sa.map((s, i) => (swap[i] ? sb[i] : s));
    const y = sb.map((s, i) => (swap[i] ? sa[i] : s));
    return corpusValue(runtime, x, options) - corpusValue(runtime, y, options);
  }, opts);
}
