/**
 * 2-D slices of llmed volumes for display, intensity windows and colour maps.
 *
 * Slice orientation (one convention for every picture): slicing across axis a keeps the other two
 * voxel axes in increasing order, (u, v) = (j, k) for a = 0, (i, k) for a = 1, (i, j) for a = 2; u runs
 * left to right and v runs bottom to top (row 0 of the picture is the largest v). On an RAS-like volume
 * this shows axial slices with anterior up, coronal and sagittal ones with superior up. It follows voxel
 * axes, not the world: a picture of an LPS volume is mirrored relative to one of an RAS volume.
 */
import type { Rgb } from './canvas.ts';

export type Axis = 0 | 1 | 2;

export interface Slice<T extends ArrayLike<number> = Float32Array> {
  /** Display raster, row-major, top row first: value at (x, y) is data[x + width·y]. */
  data: T;
  width: number;
  height: number;
  /** The volume axes shown horizontally (u) and vertically (v). */
  uAxis: Axis;
  vAxis: Axis;
}

export function inPlaneAxes(axis: Axis): [Axis, Axis] {
  return axis === 0 ? [1, 2] : axis === 1 ? [0, 2] : [0, 1];
}

function checkSlice(dims: readonly number[], axis: number, index: number, length: number, components = 1): void {
  if (axis !== 0 && axis !== 1 && axis !== 2) throw new Error(`slice: axis must be 0, 1 or 2, got ${axis}`);
  if (!Number.isInteger(index) || index < 0 || index >= dims[axis]) throw new Error(`slice: index ${index} outside 0..${dims[axis] - 1} on axis ${axis}`);
  if (length !== components * dims[0] * dims[1] * dims[2]) throw new Error(`slice: ${length} values do not match dims [${dims.join(', ')}] × ${components}`);
}

/** Flat volume index of display pixel (x, y) on the slice `index` across `axis`. */
export function sliceIndexer(dims: readonly number[], axis: Axis, index: number): (x: number, y: number) => number {
  const [uA, vA] = inPlaneAxes(axis);
  const strides = [1, dims[0], dims[0] * dims[1]];
  const h = dims[vA];
  const base = index * strides[axis];
  return (x, y) => base + x * strides[uA] + (h - 1 - y) * strides[vA];
}

/** Extract one slice (component `component` of a multi-component volume) in display orientation. */
export function extractSlice<T extends ArrayLike<number>>(
  data: T, dims: readonly number[], axis: Axis, index: number, opts: { components?: number; component?: number } = {},
): Slice<Float32Array> {
  const components = opts.components ?? 1;
  checkSlice(dims, axis, index, data.length, components);
  const [uA, vA] = inPlaneAxes(axis);
  const width = dims[uA], height = dims[vA];
  const at = sliceIndexer(dims, axis, index);
  const offset = (opts.component ?? 0) * dims[0] * dims[1] * dims[2];
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out[x + width * y] = data[offset + at(x, y)];
  return { data: out, width, height, uAxis: uA, vAxis: vA };
}

/**
 * Display window [lo, hi] of an intensity volume: the 1st and 99th percentiles of its non-zero finite
 * voxels (background zeros of skull-stripped or masked images would otherwise pull lo to 0 and waste
 * the grey range), from a strided sample of at most ~200k voxels. Falls back to [min, max].
 */
export function intensityWindow(data: ArrayLike<number>, lowPercent = 1, highPercent = 99): [number, number] {
  const step = Math.max(1, Math.floor(data.length / 200_000));
  const sample: number[] = [];
  for (let q = 0; q < data.length; q += step) { const v = data[q]; if (v !== 0 && Number.isFinite(v)) sample.push(v); }
  if (sample.length === 0) return [0, 1];
  sample.sort((a, b) => a - b);
  const at = (p: number) => sample[Math.min(sample.length - 1, Math.max(0, Math.round((p / 100) * (sample.length - 1))))];
  let lo = at(lowPercent), hi = at(highPercent);
  if (!(hi > lo)) { lo = sample[0]; hi = sample[sample.length - 1]; }
  if (!(hi > lo)) hi = lo + 1;
  return [lo, hi];
}

/** Grey level 0..255 of v in window [lo, hi] (clamped). */
export function windowed(v: number, lo: number, hi: number): number {
  if (!(v > lo)) return 0;
  if (v >= hi) return 255;
  return Math.round((255 * (v - lo)) / (hi - lo));
}

/** HSV (h in turns, s, v ∈ [0, 1]) → RGB bytes. */
export function hsv(h: number, s: number, v: number): Rgb {
  const hh = ((h % 1) + 1) % 1 * 6;
  const i = Math.floor(hh), f = hh - i;
  const p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return [Math.round(255 * r), Math.round(255 * g), Math.round(255 * b)];
}

/**
 * A distinct, stable colour per label id: hues spaced by the golden ratio so neighbouring ids (which
 * are often neighbouring structures) get far-apart hues, alternating two brightness levels.
 */
export function labelColor(label: number): Rgb {
  const h = (label * 0.6180339887) % 1;
  return hsv(h, 0.85, label % 2 ? 1 : 0.85);
}

/**
 * Diverging colour of a Jacobian determinant, centred at det = 1: log2(det) clipped to ±range maps
 * from blue (compression, det = 2^−range) through white (det = 1) to red (expansion, det = 2^range); a
 * log scale makes halving and doubling the volume equally strong. det ≤ 0 (folding) is `FOLD_COLOR`.
 */
export const FOLD_COLOR: Rgb = [0, 230, 0];
export function jacobianColor(det: number, range = 1): Rgb {
  if (!(det > 0)) return Number.isNaN(det) ? [128, 128, 128] : FOLD_COLOR;
  const t = Math.max(-1, Math.min(1, Math.log2(det) / range));
  // White to a saturated end colour; sqrt eases small deviations into view.
  const s = Math.sqrt(Math.abs(t));
  const end: Rgb = t < 0 ? [33, 80, 200] : [200, 30, 30];
  return [Math.round(255 + (end[0] - 255) * s), Math.round(255 + (end[1] - 255) * s), Math.round(255 + (end[2] - 255) * s)];
}
