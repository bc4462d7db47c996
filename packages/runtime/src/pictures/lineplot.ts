/**
 * Line plot of a few series against a shared x axis (learning curves: loss, Dice, EPE over steps).
 *
 * Each series is drawn as straight segments between its points in its own colour, with a small square
 * at each point and a legend line at the top; non-finite y values break the line. The y range is the
 * data's padded by 5 % unless given; ticks follow the 1-2-5 steps of the box plot.
 */
import { Canvas, type Rgb } from './canvas.ts';
import { niceStep } from './boxplot.ts';
import { LINE_HEIGHT, textWidth } from './font.ts';
import type { Picture } from './panels.ts';

export interface LineSeries {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
  color?: Rgb;
}

export interface LinePlotOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  yRange?: [number, number];
  width?: number;
  height?: number;
}

const BG: Rgb = [255, 255, 255];
const INK: Rgb = [20, 20, 20];
const GRID: Rgb = [225, 225, 225];
/** Distinguishable on white: blue, orange, green, red, purple, brown. */
export const SERIES_COLORS: readonly Rgb[] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75]];

function ticksOf(lo: number, hi: number): { ticks: number[]; step: number } {
  const step = niceStep(lo, hi);
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return { ticks, step };
}

const label = (v: number, step: number) => v.toFixed(Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));

/** The series as a PNG picture; `meta` holds the ranges and the series names. */
export function linePlot(series: readonly LineSeries[], opts: LinePlotOptions = {}): Picture {
  const finite = series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  if (finite.length === 0) throw new Error('linePlot: no finite points to plot');
  let xlo = Math.min(...finite.map((p) => p[0])), xhi = Math.max(...finite.map((p) => p[0]));
  if (!(xhi > xlo)) { xlo -= 0.5; xhi += 0.5; }
  let [lo, hi] = opts.yRange ?? [Math.min(...finite.map((p) => p[1])), Math.max(...finite.map((p) => p[1]))];
  if (!opts.yRange) {
    const pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 0.5;
    lo -= pad; hi += pad;
  }
  if (!(hi > lo)) throw new Error(`linePlot: empty value range [${lo}, ${hi}]`);
  const y = ticksOf(lo, hi), x = ticksOf(xlo, xhi);
  const width = opts.width ?? 520, height = opts.height ?? 320;
  const tickTextWidth = Math.max(...y.ticks.map((t) => textWidth(label(t, y.step))));
  const left = 10 + (opts.yLabel ? LINE_HEIGHT + 6 : 0) + tickTextWidth + 8;
  const legendRows = series.length;
  const top = (opts.title ? 12 + 2 * LINE_HEIGHT : 12) + legendRows * (LINE_HEIGHT + 2) + 4;
  const bottom = 10 + LINE_HEIGHT + 6 + (opts.xLabel ? LINE_HEIGHT + 4 : 0);
  const plotW = width - left - 16, plotH = height - top - bottom;
  if (plotW < 40 || plotH < 40) throw new Error(`linePlot: ${width}×${height} is too small for ${series.length} series`);
  const c = new Canvas(width, height, BG);
  const xOf = (v: number) => left + (plotW - 1) * ((v - xlo) / (xhi - xlo));
  const yOf = (v: number) => top + (plotH - 1) * (1 - (v - lo) / (hi - lo));

  let cursor = 10;
  if (opts.title) { c.text(opts.title, left, cursor, INK, { scale: 2 }); cursor += 2 * LINE_HEIGHT + 2; }
  series.forEach((s, n) => {
    const color = s.color ?? SERIES_COLORS[n % SERIES_COLORS.length];
    c.fillRect(left, cursor + 2, 14, 3, color);
    c.text(s.name, left + 20, cursor, INK);
    cursor += LINE_HEIGHT + 2;
  });
  if (opts.yLabel) c.text(opts.yLabel, 10, top + Math.max(0, (plotH - textWidth(opts.yLabel)) >> 1), INK, { vertical: true });
  for (const t of y.ticks) {
    const py = Math.round(yOf(t));
    if (py < top || py > top + plotH) continue;
    c.line(left, py, left + plotW - 1, py, GRID);
    c.line(left - 4, py, left - 1, py, INK);
    const text = label(t, y.step);
    c.text(text, left - 6 - textWidth(text), py - 3, INK);
  }
  for (const t of x.ticks) {
    const px = Math.round(xOf(t));
    if (px < left || px > left + plotW) continue;
    c.line(px, top + plotH, px, top + plotH + 3, INK);
    const text = label(t, x.step);
    c.text(text, px - (textWidth(text) >> 1), top + plotH + 6, INK);
  }
  if (opts.xLabel) c.text(opts.xLabel, left + Math.max(0, (plotW - textWidth(opts.xLabel)) >> 1), top + plotH + 8 + LINE_HEIGHT, INK);
  c.line(left - 1, top, left - 1, top + plotH - 1, INK);
  c.line(left - 1, top + plotH, left + plotW - 1, top + plotH, INK);

  const clampY = (v: number) => Math.max(top, Math.min(top + plotH - 1, yOf(v)));
  series.forEach((s, n) => {
    const color = s.color ?? SERIES_COLORS[n % SERIES_COLORS.length];
    let previous: [number, number] | undefined;
    for (const [px, py] of s.points) {
      if (!(Number.isFinite(px) && Number.isFinite(py))) { previous = undefined; continue; }
      const point: [number, number] = [Math.round(xOf(px)), Math.round(clampY(py))];
      if (previous) c.line(previous[0], previous[1], point[0], point[1], color);
      c.fillRect(point[0] - 1, point[1] - 1, 3, 3, color);
      previous = point;
    }
  });
  return { png: c.toPng(), width, height, meta: { xRange: [xlo, xhi], yRange: [lo, hi], series: series.map((s) => s.name) } };
}
