/**
 * Scoring one registered pair with Metric plugins — shared by `llmed register` (one pair) and
 * `llmed evaluate` (a protocol's test pairs), so both report the same numbers the same way.
 *
 * `time` is not a plugin: it is the measured wall time per pair (preprocessing excluded, model + warp
 * included), reported in seconds like the papers' tables.
 */
import { LlmedError } from '@llmed/core';
import { presentLabels, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';

/** A Metric plugin, resolved by the caller (the CLI resolves ids through the plugin registry). */
export interface MetricPlugin {
  id: string;
  runtime: MetricRuntime;
  options?: Record<string, unknown>;
}

export const TIME_METRIC = 'time';

/** Whether a Metric plugin reads label maps: its runtime says so (`needsLabels`). */
export function metricNeedsLabels(m: MetricPlugin): boolean {
  return m.runtime.needsLabels === true;
}

/** Whether a Metric plugin compares with the true field (`needsGroundTruth`). */
export function metricNeedsGroundTruth(m: MetricPlugin): boolean {
  return m.runtime.needsGroundTruth === true;
}

export interface ScoredPair {
  metrics: Record<string, MetricResult>;
  /** Metrics asked for but not computed, with why (no labels, no true field). */
  skipped: Record<string, string>;
}

/**
 * What a metric may need beyond the field, and what a pair without it gets: the metric is skipped with
 * `note` when it came from the defaults, refused with `error` + `hint` when asked for by name.
 */
const INPUT_NEEDS: { needs: (m: MetricPlugin) => boolean; has: (input: MetricInput) => boolean; error: string; hint: string; note: string }[] = [
  {
    needs: metricNeedsLabels,
    has: (input) => Boolean(input.fixedLabels && input.warpedLabels),
    error: 'needs label maps, and none were given',
    hint: 'pass --moving-labels and --fixed-labels (NIfTI segmentations of the two images), or leave the metric out',
    note: 'no label maps given (--moving-labels / --fixed-labels)',
  },
  {
    needs: metricNeedsGroundTruth,
    has: (input) => Boolean(input.groundTruthField),
    error: 'needs the true displacement field of the pair, and there is none',
    hint: 'only pairs made by a known deformation have one (a pairs-file entry\'s "groundTruthField", e.g. the synthetic-warps proxy); leave the metric out',
    note: 'no true field for this pair',
  },
];

/**
 * Run each metric on one pair. A label metric without label maps, or a ground-truth metric without a true
 * field, is skipped with a note when it came from the defaults, and refused (one clear error) when the user
 * asked for it by name (`explicit`).
 */
export function scorePair(metrics: readonly MetricPlugin[], input: MetricInput, opts: { explicit?: boolean; where?: string } = {}): ScoredPair {
  const out: ScoredPair = { metrics: {}, skipped: {} };
  for (const m of metrics) {
    const missing = INPUT_NEEDS.find((r) => r.needs(m) && !r.has(input));
    if (missing) {
      if (opts.explicit) throw new LlmedError('usage', `metric '${m.id}' ${missing.error}`, { where: opts.where, hint: missing.hint });
      out.skipped[m.id] = missing.note;
      continue;
    }
    out.metrics[m.id] = m.runtime.compute(input, m.options ?? {});
  }
  return out;
}

/** Mean and sample standard deviation of the finite values (NaN when none). */
export function meanStd(values: readonly number[]): { mean: number; std: number; n: number } {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return { mean: NaN, std: NaN, n: 0 };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const variance = v.length > 1 ? v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1) : 0;
  return { mean, std: Math.sqrt(variance), n: v.length };
}

/** The label ids a user asked to score: `--labels 2,3,4`, or a lookup table's ids (with their names). */
export interface LabelChoice {
  ids: number[];
  names?: Record<string, string>;
  /** Where the list came from, for the report ('--labels', 'lookup table <file>'). */
  source: string;
}

/** What metrics.json says about the labels it scored. */
export interface LabelReport {
  scored: number[];
  source: string;
  names?: Record<string, string>;
  /** Scored labels absent from a map: their per-label values are n/a (NaN), left out of the means. */
  absent: { fixed: number[]; moving: number[]; warped: number[] };
  notes: string[];
}

const listIds = (ids: readonly number[], max = 24) => (ids.length > max ? `${ids.slice(0, max).join(', ')} … (${ids.length} in all)` : ids.join(', '));

/**
 * The labels a registration scores: the user's own ids — the `choice` they passed, else every non-zero
 * label in either of their two maps — never the model's training list, which need not share a single id
 * with the user's maps (FreeSurfer 251–255, a gland saved as 200 instead of 1). Says which, from where,
 * and which of them are absent from which map (and therefore have no Dice or distance).
 */
export function describeLabels(choice: LabelChoice | undefined, fixed: ArrayLike<number>, moving: ArrayLike<number>, modelLabels: readonly number[], warped?: ArrayLike<number>): LabelReport {
  const inFixed = new Set(presentLabels(fixed));
  const inMoving = new Set(presentLabels(moving));
  const scored = choice ? [...choice.ids] : [...new Set([...inFixed, ...inMoving])].sort((a, b) => a - b);
  const source = choice?.source ?? 'the labels present in the two label maps';
  const absent = {
    fixed: scored.filter((l) => !inFixed.has(l)),
    moving: scored.filter((l) => !inMoving.has(l)),
    warped: warped ? scored.filter((l) => !new Set(presentLabels(warped)).has(l)) : [],
  };
  const notes = [`scoring ${scored.length} label${scored.length === 1 ? '' : 's'} (${source}): ${listIds(scored)}`];
  const both = absent.fixed.filter((l) => absent.moving.includes(l));
  const one = (ids: number[], what: string, then: string) => {
    if (ids.length) notes.push(`label${ids.length === 1 ? '' : 's'} ${listIds(ids)} absent from ${what}: ${then}`);
  };
  one(both, 'both label maps', 'no Dice or distance (n/a)');
  one(absent.fixed.filter((l) => !both.includes(l)), 'the fixed labels', 'Dice 0 (nothing to overlap), distances n/a');
  one(absent.moving.filter((l) => !both.includes(l)), 'the moving labels', 'Dice 0 (nothing to overlap), distances n/a');
  const model = modelLabels.filter((l) => l !== 0);
  if (model.length && !choice && scored.some((l) => !model.includes(l))) {
    notes.push(`the model was trained with labels ${listIds(model, 12)}; the scores use your maps' own ids (pass --labels to choose)`);
  }
  const report: LabelReport = { scored, source, absent, notes };
  if (choice?.names) report.names = choice.names;
  return report;
}
