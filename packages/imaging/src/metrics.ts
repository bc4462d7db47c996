/**
 * Registration metrics. Each function states its definition; where published tables disagree on one,
 * the plain definition has the plain name and a paper's variant has its own (TOOLCHAIN.md "Metric
 * conventions differ"; spec §1.7, §2.9, §5):
 *
 * | function               | plugin id             | definition (unit)                                                         | used by |
 * | ---------------------- | --------------------- | ------------------------------------------------------------------------- | ------- |
 * | dice                   | dice                  | 2|A∩B|/(|A|+|B|) per label, mean over labels present (fraction)           | all |
 * | hd95                   | hd95                  | p95 of pooled A→B and B→A surface distances, spacing honoured (mm)        | medpy, MONAI, MambaMorph/LLM-Morph with spacing |
 * | l2rHd95                | l2r-hd95              | max of the two area-weighted directed p95s, corner-grid surfels (voxels)  | Learn2Reg evaluation (DeepMind surface-distance, spacing 1) |
 * | foldingPercent ≤ 0     | jacobian-nonpositive  | 100·#{det J ≤ 0}/#voxels (%)                                               | LLaMA-Reg (stores the fraction), LLM-Morph's text |
 * | foldingPercent < 0     | jacobian-negative     | 100·#{det J < 0}/#voxels (%)                                               | MambaMorph's test script |
 * | sdLogJacobian          | sdlogj                | std(log det J) over voxels with det J > 0                                  | plain definition |
 * | l2rSdLogJacobian       | l2r-sdlogj            | std(log(clip(det J + 3, 1e-9, 1e9))) over the interior (2-voxel crop)     | Learn2Reg evaluation |
 *
 * A = fixed labels == l, B = warped moving labels == l. Standard deviations are population (ddof 0,
 * numpy's default). Percentiles are numpy's default ("linear" interpolation between order statistics).
 * The determinant is `jacobianDeterminant` (np.gradient stencils, see jacobian.ts).
 */
import { dataError } from '@llmed/core/errors';
import type { Vec3 } from './affine.ts';
import { croppedSurfaceDistances, cropLabelMask, labelBoundingBoxes, unionBox } from './distance.ts';
import { jacobianDeterminant } from './jacobian.ts';
import { areaWeightedPercentile, cornerSurfaceDistances } from './surface-elements.ts';

/** Per-label scores (keyed by label id as a string, as JSON needs) and their mean over finite scores. */
export interface LabelScores {
  perLabel: Record<string, number>;
  /** Mean over labels whose score is a number; NaN scores (label absent) are left out. NaN if none. */
  mean: number;
}

/** How a label absent from both maps is scored by Dice. */
export type AbsentLabelPolicy = 'nan' | 'zero';

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

/** label → slot index, through a flat table when the ids are small non-negative integers (the usual case). */
function slotLookup(labels: readonly number[]): (l: number) => number {
  const max = labels.reduce((m, l) => Math.max(m, l), 0);
  if (labels.every((l) => Number.isInteger(l) && l >= 0) && max < 1 << 16) {
    const table = new Int32Array(max + 1).fill(-1);
    labels.forEach((l, s) => { table[l] = s; });
    return (l) => (l >= 0 && l <= max ? table[l] : -1);
  }
  const map = new Map(labels.map((l, s) => [l, s] as const));
  return (l) => map.get(l) ?? -1;
}

/**
 * Dice per label: 2|A∩B| / (|A| + |B|), A = {fixed == l}, B = {warped == l}.
 * A label absent from both maps (0/0) scores NaN and is left out of the mean (`absentAs: 'nan'`, the
 * default); `absentAs: 'zero'` scores it 0 and keeps it in the mean, as LLaMA-Reg's code does (its
 * denominator is clamped at machine epsilon), which drags the mean down. One pass over the voxels.
 */
export function dice(fixed: ArrayLike<number>, warped: ArrayLike<number>, labels: readonly number[], opts: { absentAs?: AbsentLabelPolicy } = {}): LabelScores {
  if (fixed.length !== warped.length) throw new Error(`dice: label maps differ in size (${fixed.length} vs ${warped.length} voxels)`);
  const slot = slotLookup(labels);
  const sizeA = new Float64Array(labels.length), sizeB = new Float64Array(labels.length), both = new Float64Array(labels.length);
  for (let q = 0; q < fixed.length; q++) {
    const la = fixed[q], lb = warped[q];
    const sa = slot(la);
    if (sa >= 0) {
      sizeA[sa]++;
      if (la === lb) { both[sa]++; sizeB[sa]++; continue; }
    }
    const sb = slot(lb);
    if (sb >= 0) sizeB[sb]++;
  }
  const absentAs = opts.absentAs ?? 'nan';
  const perLabel: Record<string, number> = {};
  labels.forEach((l, s) => {
    const denom = sizeA[s] + sizeB[s];
    perLabel[String(l)] = denom > 0 ? (2 * both[s]) / denom : absentAs === 'zero' ? 0 : NaN;
  });
  return scores(perLabel);
}

/** Pooled or directed surface distances per label, cropped to each label's bounding box (exact, see distance.ts). */
function perLabelSurfaceDistances(
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
 * HD95 per label, in mm: the 95th percentile (numpy linear) of the pooled distances from every surface
 * voxel of A to the nearest surface voxel of B and from every surface voxel of B to the nearest of A,
 * distances measured with the voxel spacing (exact EDT). Surface = 6-connectivity boundary (distance.ts).
 * This is medpy's `hd95` with `voxelspacing=spacing, connectivity=1`, MambaMorph's HD95 (with spacing).
 * A label empty in either map scores NaN and is left out of the mean.
 */
export function hd95(fixed: ArrayLike<number>, warped: ArrayLike<number>, dims: readonly number[], spacing: readonly number[], labels: readonly number[]): LabelScores {
  return perLabelSurfaceDistances(fixed, warped, dims, spacing, labels, (aToB, bToA) => {
    const pooled = new Float64Array(aToB.length + bToA.length);
    pooled.set(aToB);
    pooled.set(bToA, aToB.length);
    pooled.sort();
    return percentileSorted(pooled, 95);
  });
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

/**
 * Learn2Reg's HD95 per label, in voxels, as its evaluation computes it (`compute_hd95` over DeepMind
 * surface-distance's `compute_surface_distances(fixed == l, warped == l, np.ones(3))` and
 * `compute_robust_hausdorff(·, 95)`): the surfaces are the area-weighted marching-cubes surface elements on
 * the voxel-corner grid (surface-elements.ts), each directed 95th percentile is the first sorted distance
 * whose cumulative share of the surface *area* reaches 95 %, and the score is the larger of the two.
 * Distances use spacing 1 whatever the image spacing. Absent labels follow Learn2Reg: NaN when the label is
 * missing from the fixed map or from the *unwarped* moving map (`moving`; the warped map stands in when it
 * is not given), +Infinity when it is present in both but warped out of the grid. The mean is over the
 * non-NaN labels (np.nanmean: an infinite label makes it infinite).
 */
export function l2rHd95(fixed: ArrayLike<number>, warped: ArrayLike<number>, dims: readonly number[], labels: readonly number[], opts: { moving?: ArrayLike<number> } = {}): LabelScores {
  const n = dims[0] * dims[1] * dims[2];
  if (fixed.length !== n || warped.length !== n) throw new Error(`l2rHd95: label maps of ${fixed.length} and ${warped.length} voxels do not match dims [${dims.join(', ')}]`);
  const boxesA = labelBoundingBoxes(fixed, dims, labels);
  const boxesB = labelBoundingBoxes(warped, dims, labels);
  const inMoving = new Set(presentLabels(opts.moving ?? warped));
  const perLabel: Record<string, number> = {};
  for (const l of labels) {
    const boxA = boxesA.get(l);
    if (!boxA || !inMoving.has(l)) { perLabel[String(l)] = NaN; continue; }
    const box = unionBox(boxA, boxesB.get(l))!;
    const a = cropLabelMask(fixed, dims, l, box), b = cropLabelMask(warped, dims, l, box);
    const { aToB, bToA } = cornerSurfaceDistances(a.mask, b.mask, a.dims, [1, 1, 1]);
    perLabel[String(l)] = Math.max(areaWeightedPercentile(aToB, 95), areaWeightedPercentile(bToA, 95));
  }
  const values = Object.values(perLabel).filter((v) => !Number.isNaN(v));
  return { perLabel, mean: values.length ? values.reduce((x, y) => x + y, 0) / values.length : NaN };
}

/**
 * The voxel-boundary variant that `l2r-hd95` computed before it matched Learn2Reg: the same
 * max-of-directed-p95s, but over the 6-connectivity surface voxels of `hd95`, each with equal weight
 * (`robustPercentileSorted`). It runs 4–7 % above Learn2Reg's number on brain labels (up to half a voxel
 * on one label); kept for comparison with results computed that way, not as a benchmark's metric.
 */
export function voxelBoundaryHd95(fixed: ArrayLike<number>, warped: ArrayLike<number>, dims: readonly number[], labels: readonly number[]): LabelScores {
  return perLabelSurfaceDistances(fixed, warped, dims, [1, 1, 1], labels, (aToB, bToA) => {
    aToB.sort();
    bToA.sort();
    return Math.max(robustPercentileSorted(aToB, 95), robustPercentileSorted(bToA, 95));
  });
}

/**
 * Folding: 100 · #{det J ≤ 0} / #voxels (`strict: false`, LLaMA-Reg's convention — its code stores the
 * fraction, the paper prints %) or 100 · #{det J < 0} / #voxels (`strict: true`, MambaMorph's). All
 * voxels count in the denominator; a NaN determinant (a NaN in the field) counts as not folded.
 */
export function foldingPercent(detJ: ArrayLike<number>, opts: { strict?: boolean } = {}): number {
  if (detJ.length === 0) return NaN;
  let folded = 0;
  if (opts.strict) { for (let q = 0; q < detJ.length; q++) if (detJ[q] < 0) folded++; }
  else { for (let q = 0; q < detJ.length; q++) if (detJ[q] <= 0) folded++; }
  return (100 * folded) / detJ.length;
}

/** Population standard deviation of `f(x)` over the x that `keep` accepts (two-pass for accuracy). */
function stdOf(values: ArrayLike<number>, f: (x: number) => number, keep: (x: number, q: number) => boolean): { std: number; count: number } {
  let sum = 0, count = 0;
  for (let q = 0; q < values.length; q++) if (keep(values[q], q)) { sum += f(values[q]); count++; }
  if (count === 0) return { std: NaN, count };
  const mean = sum / count;
  let ss = 0;
  for (let q = 0; q < values.length; q++) if (keep(values[q], q)) { const d = f(values[q]) - mean; ss += d * d; }
  return { std: Math.sqrt(ss / count), count };
}

/**
 * SDlogJ, plain definition: population std of log(det J) over the voxels where det J > 0. Folded voxels
 * (det J ≤ 0), whose logarithm does not exist, are left out — report them with `foldingPercent`; NaN if
 * no voxel has det J > 0.
 */
export function sdLogJacobian(detJ: ArrayLike<number>): number {
  return stdOf(detJ, Math.log, (x) => x > 0).std;
}

/**
 * SDlogJ as Learn2Reg's evaluation computes it: std(log(clip(det J + 3, 1e-9, 1e9))) over the voxels at
 * least `crop` (default 2) voxels from every face — its `jacobian_determinant` returns
 * `jacobian[:, :, 2:-2, 2:-2, 2:-2]`, inside which its zero-padded central differences equal ours. The
 * +3 shift keeps folded voxels finite but compresses the spread, so the numbers are not comparable with
 * `sdLogJacobian`. NaN if the crop leaves nothing.
 */
export function l2rSdLogJacobian(detJ: ArrayLike<number>, dims: readonly number[], opts: { crop?: number } = {}): number {
  const crop = opts.crop ?? 2;
  const [nx, ny, nz] = dims;
  if (detJ.length !== nx * ny * nz) throw new Error(`l2rSdLogJacobian: ${detJ.length} values do not match dims [${dims.join(', ')}]`);
  const inside = (p: number, n: number) => p >= crop && p < n - crop;
  const shiftedLog = (x: number) => Math.log(Math.min(Math.max(x + 3, 1e-9), 1e9));
  return stdOf(detJ, shiftedLog, (_x, q) => {
    const i = q % nx, j = Math.floor(q / nx) % ny, k = Math.floor(q / (nx * ny));
    return inside(i, nx) && inside(j, ny) && inside(k, nz);
  }).std;
}

/**
 * Endpoint error (mm) of a displacement field against the true one, on the same grid:
 *
 *   EPE = mean over p ∈ R of ‖S (u(p) − u*(p))‖₂,   S = diag(spacing)
 *
 * `field` and `truth` are in voxels of that grid, component-major (3 × nvox). R is the set of voxels where
 * `mask` is non-zero when a mask is given, else the whole grid. Returns NaN when R is empty.
 */
export function endpointError(field: ArrayLike<number>, truth: ArrayLike<number>, dims: readonly number[], spacing: readonly number[], mask?: ArrayLike<number>): number {
  const n = dims[0] * dims[1] * dims[2];
  if (field.length !== 3 * n || truth.length !== 3 * n) throw new Error(`endpointError: fields of ${field.length} and ${truth.length} values do not match dims [${dims.join(', ')}] (3 × ${n})`);
  if (mask && mask.length !== n) throw new Error(`endpointError: mask of ${mask.length} voxels does not match dims [${dims.join(', ')}]`);
  const [sx, sy, sz] = spacing;
  let sum = 0;
  let count = 0;
  for (let q = 0; q < n; q++) {
    if (mask && !mask[q]) continue;
    const dx = (field[q] - truth[q]) * sx, dy = (field[n + q] - truth[n + q]) * sy, dz = (field[2 * n + q] - truth[2 * n + q]) * sz;
    sum += Math.sqrt(dx * dx + dy * dy + dz * dz);
    count++;
  }
  return count ? sum / count : NaN;
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

/** The `labels` option of every label metric's schema; `chooseLabels` gives it its meaning. */
/** The predicted and the true field, checked; throws a `data` error when the truth is missing or the wrong size. */
export function requireGroundTruth(metric: string, input: MetricInput): { field: Float32Array; truth: Float32Array; dims: Vec3 } {
  const { field, dims } = requireField(metric, input);
  if (!input.groundTruthField) throw dataError(metric, `${metric} needs the true displacement field of the pair`, 'only pairs made by known deformations have one (a pairs file entry\'s "groundTruthField")');
  if (input.groundTruthField.length !== field.length) throw dataError(metric, `true field has ${input.groundTruthField.length} values, the predicted one ${field.length}`);
  return { field, truth: input.groundTruthField, dims };
}

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
