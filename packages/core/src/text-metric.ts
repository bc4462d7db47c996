/**
 * The compute signature of text Metric plugins (report generation, VQA), beside the registration one
 * (`MetricRuntime` in @llmed/imaging). A text metric's descriptor is an ordinary Metric descriptor whose
 * `runtime` is a `TextMetricRuntime`; `isTextMetricRuntime` tells the two apart, so registration's
 * evaluation never calls a text metric with label maps, nor the other way round.
 */

/** One evaluated sample: the system's text and the reference text(s) it is scored against. */
export interface TextSample {
  /** Sample id, carried into per-sample outputs. */
  id?: string;
  /** The generated report, or the generated answer of a VQA item. */
  candidate: string;
  /** One or more references (BLEU / CIDEr-D use all; VQA: the correct option letter first). */
  references: string[];
  /** VQA: the answer options in letter order (A, B, ...); their count gives the chance level. */
  choices?: string[];
}

export interface TextMetricInput {
  samples: TextSample[];
}

export interface TextMetricContext {
  /** Absolute workspace root: relative model folders (the MiniLM export, a GREEN judge) resolve from it. */
  workspaceRoot: string;
}

export interface TextMetricResult {
  /** The headline value (NaN when skipped). */
  value: number;
  /** Named values, e.g. bleu-1 … bleu-4, or chance for VQA. The headline is one of them. */
  outputs: Record<string, number>;
  /** Per-sample scores in input order; NaN where a sample could not be scored (e.g. an unparseable judge answer). */
  perSample: number[];
  unit: 'fraction' | 'score';
  higherIsBetter: boolean;
  /** Why the metric did not run (its model is missing); value and outputs are then NaN / empty. */
  skipped?: string;
  /** Counts worth reporting beside the value (GREEN: unparseable judge answers). */
  counts?: Record<string, number>;
}

export interface TextMetricRuntime<O extends object = Record<string, unknown>> {
  text: true;
  /**
   * 'mean': the value is the mean of `perSample` (ROUGE-L, METEOR, VQA, similarity, GREEN), so intervals
   * resample per-sample values; 'corpus': a corpus statistic (BLEU, CIDEr-D), so intervals recompute it on
   * resampled test sets (`computeText` must then be synchronous).
   */
  aggregate: 'mean' | 'corpus';
  computeText(input: TextMetricInput, options: O, ctx?: TextMetricContext): TextMetricResult | Promise<TextMetricResult>;
}

export function isTextMetricRuntime(runtime: unknown): runtime is TextMetricRuntime<any> {
  return typeof runtime === 'object' && runtime !== null && (runtime as { text?: unknown }).text === true
    && typeof (runtime as { computeText?: unknown }).computeText === 'function';
}
