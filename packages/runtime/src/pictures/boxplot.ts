/**
 * Box plot of per-label scores over pairs (Dice or HD95 per structure, as the papers' box plots).
 *
 * Per label: the box spans the first to the third quartile with a line at the median (numpy's linear
 * percentiles), whiskers reach the most extreme values within 1.5·IQR of the box (Tukey), values beyond
 * are outliers drawn as circles. NaN scores (label absent in a pair) are left out and counted. Label
 * names are drawn under the axis, rotated to read bottom-to-top.
 */
import { percentileSorted } from '@llmed/imaging';
import { Canvas, type Rgb } from './canvas.ts';
import { LINE_HEIGHT, textWidth } from './font.ts';
import type { Picture } from './panels.ts';

export interface BoxStats {
  /** Finite values used. */
  n: number;
  /** NaN / non-finite values left out. */
  missing: number;
  q1: number;
  median: number;
  q3: number;
  whiskerLow: number;
  whiskerHigh: number;
  outliers: number[];
}

/** Tukey box statistics of the finite values (NaN fields when there are none). */
export function boxStats(values: readonly number[]): BoxStats {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const missing = values.length - finite.length;
  if (finite.length === 0) return { n: 0, missing, q1: NaN, median: NaN, q3: NaN, whiskerLow: NaN, whiskerHigh: NaN, outliers: [] };
  const q1 = percentileSorted(finite, 25), median = percentileSorted(finite, 50), q3 = percentileSorted(finite, 75);
  const iqr = q3 - q1;
  const lowFence = q1 - 1.5 * iqr, highFence = q3 + 1.5 * iqr;
  const inside = finite.filter((v) => v >= lowFence && v <= highFence);
  return {
    n: finite.length,
    missing,
    q1,
    median,
    q3,
    whiskerLow: inside.length ? inside[0] : q1,
    whiskerHigh: inside.length ? inside[inside.length - 1] : q3,
    outliers: finite.filter((v) => v < lowFence || v > highFence),
  };
}

/** A 1-2-5 step giving about `count` intervals over [lo, hi]. */
export function niceStep(lo: number, hi: number, count = 5): number {
  const raw = (hi - lo) / count;
  if (!(raw > 0)) return 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  // Nearest of 1, 2, 5, 10 on a log-ish scale, so 2.02 gives 2 rather than jumping to 5.
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

function formatValue(v: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(decimals);
}

export interface BoxPlotOptions {
  title?: string;
  /** Axis title, drawn vertically at the left ("DICE", "HD95 (MM)"). */
  yLabel?: string;
  /** Fixed value range; default: the data's range padded by 5 %. */
  yRange?: [number, number];
  /** Label order (default: the record's key order). */
  order?: string[];
  /** Total picture size; the width defaults to fit the labels (≥ 22 px per label). */
  width?: number;
  height?: number;
  boxColor?: Rgb;
}

const BG: Rgb = [255, 255, 255];
const INK: Rgb = [20, 20, 20];
const GRID: Rgb = [225, 225, 225];
const BOX: Rgb = [70, 130, 200];

/** Box plot of `perLabel` (label name → scores over pairs) as a PNG; `meta` has the label order and the stats. */
export function boxPlot(perLabel: Record<string, readonly number[]>, opts: BoxPlotOptions = {}): Picture {
  const names = opts.order ?? Object.keys(perLabel);
  if (names.length === 0) throw new Error('boxPlot: no labels to plot');
  for (const name of names) if (!(name in perLabel)) throw new Error(`boxPlot: order names '${name}', which has no scores`);
  const stats = names.map((name) => boxStats(perLabel[name]));

  let [lo, hi] = opts.yRange ?? [Infinity, -Infinity];
  if (!opts.yRange) {
    for (const s of stats) if (s.n) { lo = Math.min(lo, s.whiskerLow, ...s.outliers); hi = Math.max(hi, s.whiskerHigh, ...s.outliers); }
    if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
    const pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 0.5;
    lo -= pad; hi += pad;
  }
  if (!(hi > lo)) throw new Error(`boxPlot: empty value range [${lo}, ${hi}]`);
  const step = niceStep(lo, hi);
  const tickStart = Math.ceil(lo / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let t = tickStart; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);

  const tickTextWidth = Math.max(...ticks.map((t) => textWidth(formatValue(t, step))));
  const longestName = Math.max(...names.map((n) => textWidth(n)));
  const left = 10 + (opts.yLabel ? LINE_HEIGHT + 6 : 0) + tickTextWidth + 8;
  const top = opts.title ? 12 + 2 * LINE_HEIGHT : 12;
  const bottom = 10 + longestName + 8;
  const slot = 22;
  const width = opts.width ?? Math.max(320, left + names.length * slot + 16);
  const height = opts.height ?? 360;
  const plotW = width - left - 16, plotH = height - top - bottom;
  if (plotW < names.length * 4 || plotH < 40) throw new Error(`boxPlot: ${width}×${height} is too small for ${names.length} labels`);
  const c = new Canvas(width, height, BG);
  const yOf = (v: number) => top + (plotH - 1) * (1 - (v - lo) / (hi - lo));

  if (opts.title) c.text(opts.title, left, 10, INK, { scale: 2 });
  if (opts.yLabel) c.text(opts.yLabel, 10, top + Math.max(0, (plotH - textWidth(opts.yLabel)) >> 1), INK, { vertical: true });
  for (const t of ticks) {
    const y = Math.round(yOf(t));
    c.line(left, y, left + plotW - 1, y, GRID);
    c.line(left - 4, y, left - 1, y, INK);
    const label = formatValue(t, step);
    c.text(label, left - 6 - textWidth(label), y - 3, INK);
  }
  c.line(left - 1, top, left - 1, top + plotH - 1, INK);
  c.line(left - 1, top + plotH, left + plotW - 1, top + plotH, INK);

  const pitch = plotW / names.length;
  const boxW = Math.max(3, Math.min(40, Math.round(pitch * 0.6)));
  const color = opts.boxColor ?? BOX;
  names.forEach((name, n) => {
    const cx = Math.round(left + pitch * (n + 0.5));
    const s = stats[n];
    // Label under the axis, reading upward, its end just below the axis.
    c.text(name, cx - 3, top + plotH + 6, INK, { vertical: true });
    c.line(cx, top + plotH, cx, top + plotH + 3, INK);
    if (!s.n) return;
    const clampY = (v: number) => Math.max(top, Math.min(top + plotH - 1, yOf(v)));
    const yq1 = Math.round(clampY(s.q1)), yq3 = Math.round(clampY(s.q3));
    const x0 = cx - (boxW >> 1);
    c.line(cx, Math.round(clampY(s.whiskerHigh)), cx, yq3, INK);
    c.line(cx, yq1, cx, Math.round(clampY(s.whiskerLow)), INK);
    c.line(cx - (boxW >> 2), Math.round(clampY(s.whiskerHigh)), cx + (boxW >> 2), Math.round(clampY(s.whiskerHigh)), INK);
    c.line(cx - (boxW >> 2), Math.round(clampY(s.whiskerLow)), cx + (boxW >> 2), Math.round(clampY(s.whiskerLow)), INK);
    c.fillRect(x0, yq3, boxW, Math.max(1, yq1 - yq3 + 1), color);
    c.strokeRect(x0, yq3, boxW, Math.max(1, yq1 - yq3 + 1), INK);
    const ym = Math.round(clampY(s.median));
    c.fillRect(x0, ym - 1, boxW, 2, [250, 160, 30]);
    for (const o of s.outliers) c.circle(cx, Math.round(clampY(o)), 2, INK);
  });
  // Text would overlap the next label when slots are narrower than a glyph line; say so in meta.
  const crowded = pitch < LINE_HEIGHT;
  return {
    png: c.toPng(),
    width,
    height,
    meta: { labels: names, stats: Object.fromEntries(names.map((n, i) => [n, stats[i]])), yRange: [lo, hi], ...(crowded ? { warning: 'labels overlap: widen the picture' } : {}) },
  };
}
