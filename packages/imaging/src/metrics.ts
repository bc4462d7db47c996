/**
 * What the registration metrics share: the Metric plugins' input/output contract (`MetricInput`,
 * `MetricResult`, `MetricRuntime`, the checks every metric makes of its input) and the primitives more than
 * one metric calls (percentiles, per-label surface distances, population standard deviation). The maths of
 * each metric lives in its plugin folder (plugins/<id>/src/), one definition per id (TOOLCHAIN.md "Metric
 * conventions differ"; spec §1.7, §2.9, §5):
 *
 * | plugin id             | definition (unit)                                                         | used by |
 * | --------------------- | ------------------------------------------------------------------------- | ------- |
 * | dice                  | 2|A∩B|/(|A|+|B|) per label, mean over labels present (fraction)           | all |
 * | hd95                  | p95 of pooled A→B and B→A surface distances, spacing honoured (mm)        | medpy, MONAI, MambaMorph/LLM-Morph with spacing |
 * | l2r-hd95              | max of the two area-weighted directed p95s, corner-grid surfels (voxels)  | Learn2Reg evaluation (DeepMind surface-distance, spacing 1) |
 * | jacobian-nonpositive  | 100·#{det J ≤ 0}/#voxels (%)                                               | LLaMA-Reg (stores the fraction), LLM-Morph's text |
 * | jacobian-negative     | 100·#{det J < 0}/#voxels (%)                                               | MambaMorph's test script |
 * | sdlogj                | std(log det J) over voxels with det J > 0                                  | plain definition |
 * | l2r-sdlogj            | std(log(clip(det J + 3, 1e-9, 1e9))) over the interior (2-voxel crop)     | Learn2Reg evaluation |
 * | endpoint-error        | mean ‖diag(spacing)(u − u*)‖ over the fixed labels or the grid (mm)       | synthetic warps with a known field |
 *
 * A = fixed labels == l, B = warped moving labels == l. Standard deviations are population (ddof 0,
 * numpy's default). Percentiles are numpy's default ("linear" interpolation between order statistics).
 * The determinant is `jacobianDeterminant` (np.gradient stencils, see jacobian.ts).
 */
import { dataError, pluginError } from '@llmed/core/errors';
import { caseValue, isCaseTensor } from '@llmed/core/plugin-cases';
import type { Vec3 } from './affine.ts';
import { croppedSurfaceDistances, cropLabelMask, labelBoundingBoxes, unionBox } from './distance.ts';
import { jacobianDeterminant } from './jacobian.ts';

/** Per-label scores (keyed by label id as a string, as JSON needs) and their mean over finite scores. */
export interface LabelScores {
  perLabel: Record<string, number>;
  /** Mean over labels whose score is a number; NaN scores (label absent) are left out. NaN if none. */
  mean: number;
}

/** Mean of the finite values; NaN when there are none. */
export function nanMean(values: Iterable<number>): number {
  let sum = 0, count = 0;
  for (const v of values) if (Number.isFinite(v)) { sum += v; count++; }
  return count ? sum / count : NaN;
}

function scores(perLabel: Record<string, number>): LabelScores {
  return { perLabel, mean: nanMean(Object.values(perLabel)) };
}

/**
 * Percentile of ascending-sorted values, numpy's default ("linear"): with h = (n − 1)·p/100, the value
 * interpolated between x[⌊h⌋] and x[⌊h⌋+1]. NaN for an empty array.
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * (p / 100);
  const lo = Math.floor(h);
  if (lo >= n - 1) return sorted[n - 1];
  const t = h - lo;
  const a = sorted[lo], b = sorted[lo + 1];
  // numpy's _lerp: interpolate from the nearer end, so t = 1 gives exactly b.
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

/** Sorted non-zero labels occurring in either map (the default label list when none is given). */
export function presentLabels(...maps: ArrayLike<number>[]): number[] {
  const seen = new Set<number>();
  for (const m of maps) {
    let prev = 0;
    for (let q = 0; q < m.length; q++) {
      const l = m[q];
      if (l !== prev) { seen.add(l); prev = l; }
    }
  }
  seen.delete(0);
  return [...seen].sort((a, b) => a - b);
}

/**
 * Per-label surface distances between the 6-connectivity boundaries of A = {fixed == l} and B = {warped == l},
 * each label cropped to the bounding box of A ∪ B (exact, see distance.ts), reduced to one number per label by
 * `reduce` (hd95 pools them, the voxel-boundary variant of l2r-hd95 takes directed percentiles). A label empty
 * in either map scores NaN; the mean is over the finite scores.
 */
export function perLabelSurfaceDistances(
  fixed: ArrayLike<number>, warped: ArrayLike<number>, dims: readonly number[], spacing: readonly number[], labels: readonly number[],
  reduce: (aToB: Float64Array, bToA: Float64Array) => number,
): LabelScores {
  const n = dims[0] * dims[1] * dims[2];
  if (fixed.length !== n || warped.length !== n) throw new Error(`surface distance: label maps of ${fixed.length} and ${warped.length} voxels do not match dims [${dims.join(', ')}]`);
  const boxesA = labelBoundingBoxes(fixed, dims, labels);
  const boxesB = labelBoundingBoxes(warped, dims, labels);
  const perLabel: Record<string, number> = {};
  for (const l of labels) {
    const boxA = boxesA.get(l), boxB = boxesB.get(l);
    if (!boxA || !boxB) { perLabel[String(l)] = NaN; continue; } // a surface distance needs both surfaces
    const box = unionBox(boxA, boxB)!;
    const a = cropLabelMask(fixed, dims, l, box), b = cropLabelMask(warped, dims, l, box);
    const { aToB, bToA } = croppedSurfaceDistances(a.mask, b.mask, a.dims, spacing);
    perLabel[String(l)] = reduce(aToB, bToA);
  }
  return scores(perLabel);
}

/**
 * The directed 95th percentile the DeepMind surface-distance library uses for its "robust Hausdorff":
 * sorted distances d_0 ≤ … ≤ d_{n−1}, each with weight 1/n; the first d_t whose cumulative weight
 * (t+1)/n reaches 0.95 (no interpolation).
 */
export function robustPercentileSorted(sorted: ArrayLike<number>, percent: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const target = percent / 100;
  for (let t = 0; t < n; t++) if ((t + 1) / n >= target) return sorted[t];
  return sorted[n - 1];
}

/** Population standard deviation of `f(x)` over the x that `keep` accepts (two-pass for accuracy): SDlogJ's core. */
export function populationStd(values: ArrayLike<number>, f: (x: number) => number, keep: (x: number, q: number) => boolean): { std: number; count: number } {
  let sum = 0, count = 0;
  for (let q = 0; q < values.length; q++) if (keep(values[q], q)) { sum += f(values[q]); count++; }
  if (count === 0) return { std: NaN, count };
  const mean = sum / count;
  let ss = 0;
  for (let q = 0; q < values.length; q++) if (keep(values[q], q)) { const d = f(values[q]) - mean; ss += d * d; }
  return { std: Math.sqrt(ss / count), count };
}

// ---------------------------------------------------------------------------------------------------
// The input/output contract of Metric plugins (plugins/<id>/src/index.ts), shared so every metric checks
// its input the same way.

/** What a Metric plugin's `runtime.compute` receives. Label maps are on the fixed grid; the field is in voxels. */
export interface MetricInput {
  fixedLabels?: Int32Array;
  /** Moving labels warped onto the fixed grid (nearest neighbour). */
  warpedLabels?: Int32Array;
  /** The moving labels before warping, on their own grid: which labels the moving scan has (Learn2Reg's NaN rule). */
  movingLabels?: Int32Array;
  /** Displacement field, 3 components, component-major, voxels of the fixed grid. */
  field?: Float32Array;
  /** The true displacement field when it is known (synthetic warps), same layout and units as `field`. */
  groundTruthField?: Float32Array;
  dims: Vec3 | readonly number[];
  /** Voxel size in mm of the fixed grid. */
  spacing: Vec3 | readonly number[];
  /** Labels to score; empty = every non-zero label present in either map. */
  labels: number[];
}

export interface MetricResult {
  value: number;
  perLabel?: Record<string, number>;
  unit: string;
  higherIsBetter: boolean;
}

/** Runtime part of a Metric plugin descriptor. */
export interface MetricRuntime<O = Record<string, unknown>> {
  /** The metric reads label maps (Dice, HD95): callers skip it with a note, or refuse it when asked for by
   *  name, when a pair has no labels. Field metrics leave it unset. */
  readonly needsLabels?: boolean;
  /** The metric compares with the true field (endpoint error): callers skip it with a note when a pair has
   *  none, and refuse it when asked for by name. */
  readonly needsGroundTruth?: boolean;
  compute(input: MetricInput, options?: Partial<O>): MetricResult;
}

function checkGrid(metric: string, input: MetricInput): number {
  const d = input.dims;
  if (!d || d.length !== 3 || d.some((x) => !Number.isInteger(x) || x < 1)) throw dataError(metric, `dims must be three positive integers, got [${d ? [...d].join(', ') : ''}]`);
  const s = input.spacing;
  if (!s || s.length !== 3 || s.some((x) => !(x > 0))) throw dataError(metric, `spacing must be three positive numbers (mm), got [${s ? [...s].join(', ') : ''}]`);
  return d[0] * d[1] * d[2];
}

/** The two label maps, checked; throws a `data` error naming the CLI flags when they are missing. */
export function requireLabelMaps(metric: string, input: MetricInput): { fixed: Int32Array; warped: Int32Array; labels: number[] } {
  if (!input.fixedLabels || !input.warpedLabels) {
    throw dataError(metric, `${metric} needs label maps: pass --moving-labels and --fixed-labels`, 'label maps are NIfTI segmentations on the grids of the moving and fixed images');
  }
  const n = checkGrid(metric, input);
  for (const [name, m] of [['fixed', input.fixedLabels], ['warped', input.warpedLabels]] as const) {
    if (m.length !== n) throw dataError(metric, `${name} label map has ${m.length} voxels, dims [${[...input.dims].join(', ')}] need ${n}`, 'warp the moving labels onto the fixed grid first');
  }
  return { fixed: input.fixedLabels, warped: input.warpedLabels, labels: input.labels ?? [] };
}

/** The displacement field, checked; throws a `data` error when it is missing or the wrong size. */
export function requireField(metric: string, input: MetricInput): { field: Float32Array; dims: Vec3 } {
  if (!input.field) throw dataError(metric, `${metric} needs the displacement field: register the pair first (or pass --field)`, 'the field is written by `llmed register` as a NIfTI vector image');
  const n = checkGrid(metric, input);
  if (input.field.length !== 3 * n) throw dataError(metric, `field has ${input.field.length} values, a 3-component field on [${[...input.dims].join(', ')}] needs ${3 * n}`);
  const d = input.dims;
  return { field: input.field, dims: [d[0], d[1], d[2]] };
}

/** The predicted and the true field, checked; throws a `data` error when the truth is missing or the wrong size. */
export function requireGroundTruth(metric: string, input: MetricInput): { field: Float32Array; truth: Float32Array; dims: Vec3 } {
  const { field, dims } = requireField(metric, input);
  if (!input.groundTruthField) throw dataError(metric, `${metric} needs the true displacement field of the pair`, 'only pairs made by known deformations have one (a pairs file entry\'s "groundTruthField")');
  if (input.groundTruthField.length !== field.length) throw dataError(metric, `true field has ${input.groundTruthField.length} values, the predicted one ${field.length}`);
  return { field, truth: input.groundTruthField, dims };
}

/** The `labels` option of every label metric's schema; `chooseLabels` gives it its meaning. */
export const LABELS_OPTION_SCHEMA = Object.freeze({
  type: 'array', items: { type: 'integer' }, description: 'labels to score (default: the experiment list, else all non-zero labels present)',
});

/** Labels a metric scores: the options' list, else the input's, else every non-zero label present. */
export function chooseLabels(optionLabels: readonly number[] | undefined, inputLabels: readonly number[], ...maps: ArrayLike<number>[]): number[] {
  if (optionLabels && optionLabels.length) return [...optionLabels];
  if (inputLabels.length) return [...inputLabels];
  return presentLabels(...maps);
}

/** det J of the input's field (voxels), for the Jacobian metrics. */
export function fieldJacobian(metric: string, input: MetricInput): { detJ: Float32Array; dims: Vec3 } {
  const { field, dims } = requireField(metric, input);
  return { detJ: jacobianDeterminant(field, dims), dims };
}

const CASE_LABEL_MAPS = ['fixedLabels', 'warpedLabels', 'movingLabels'] as const;
const CASE_FIELDS = ['field', 'groundTruthField'] as const;

/**
 * A `MetricInput` from inputs in the plugin-cases encoding (packages/core/src/plugin-cases.ts), as a Metric's
 * `example.inputs` and its tests/cases.json give them: label maps as (K, J, I) int32 tensors, fields as
 * (3, K, J, I) float32 tensors (torch layout, which is the flat layout of `MetricInput`), `spacing` [sx, sy, sz]
 * in mm (default 1 mm), `labels` a list (default: none chosen). dims come from the tensors' shapes. The
 * Python references decode the same inputs with llmed.plugin_cases.
 */
export function metricInputFromCase(inputs: Readonly<Record<string, unknown>>, where = 'metric case'): MetricInput {
  const known = new Set<string>([...CASE_LABEL_MAPS, ...CASE_FIELDS, 'spacing', 'labels']);
  for (const name of Object.keys(inputs)) if (!known.has(name)) throw pluginError(where, `unknown metric input '${name}'; known: ${[...known].join(', ')}`);
  let dims: Vec3 | undefined;
  const grid = (name: string, shape: number[], components: number): void => {
    const spatial = shape.slice(components === 1 ? 0 : 1);
    if (spatial.length !== 3 || (components > 1 && shape[0] !== components)) {
      throw pluginError(where, `${name} has shape [${shape.join(', ')}]; ${components === 1 ? 'a label map is (K, J, I)' : 'a field is (3, K, J, I)'}`);
    }
    const d: Vec3 = [spatial[2], spatial[1], spatial[0]];
    if (dims && d.some((x, a) => x !== dims![a])) throw pluginError(where, `${name} is on a [${d.join(', ')}] grid, another input on [${dims.join(', ')}]`);
    dims = d;
  };
  const tensor = (name: string) => {
    const v = caseValue(inputs[name], `${where} inputs.${name}`);
    if (v === undefined) return undefined;
    if (!isCaseTensor(v)) throw pluginError(where, `${name} must be a tensor value ({"shape", "data" | "sine" | "boxes"})`);
    return v;
  };
  const out: Partial<MetricInput> = {};
  for (const name of CASE_LABEL_MAPS) {
    const t = tensor(name);
    if (!t) continue;
    grid(name, t.shape, 1);
    out[name] = t.data instanceof Int32Array ? t.data : Int32Array.from(t.data);
  }
  for (const name of CASE_FIELDS) {
    const t = tensor(name);
    if (!t) continue;
    grid(name, t.shape, 3);
    out[name] = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
  }
  if (!dims) throw pluginError(where, 'a metric case needs at least one label map or field');
  const spacing = inputs.spacing ?? [1, 1, 1];
  const labels = inputs.labels ?? [];
  if (!Array.isArray(spacing) || !Array.isArray(labels)) throw pluginError(where, 'spacing and labels must be lists of numbers');
  return { ...out, dims, spacing: spacing as number[], labels: labels as number[] };
}
