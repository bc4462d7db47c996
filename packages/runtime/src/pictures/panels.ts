/**
 * Evaluation pictures of one registered pair: a fixed / moving / warped slice panel with label
 * contours, a deformed grid, and a Jacobian-determinant map. Each returns a `Picture` (PNG bytes plus
 * its size); `savePicture` writes it atomically. Slice orientation is the one in slices.ts (u right,
 * v up, voxel axes).
 */
import { Canvas, type Rgb } from './canvas.ts';
import { LINE_HEIGHT, textWidth } from './font.ts';
import { type Axis, extractSlice, FOLD_COLOR, intensityWindow, jacobianColor, labelColor, type Slice, windowed } from './slices.ts';

export interface Picture {
  png: Buffer;
  width: number;
  height: number;
  /** Facts a caller may want next to the picture (label order, statistics). */
  meta?: Record<string, unknown>;
}

const BACKGROUND: Rgb = [18, 18, 18];
const TEXT: Rgb = [230, 230, 230];
const MUTED: Rgb = [160, 160, 160];
const MARGIN = 8;

/** Default zoom: the smallest integer that makes the larger slice side at least 256 pixels. */
function autoZoom(w: number, h: number, zoom?: number): number {
  if (zoom !== undefined) {
    if (!Number.isInteger(zoom) || zoom < 1) throw new Error(`pictures: zoom must be a positive integer, got ${zoom}`);
    return zoom;
  }
  return Math.max(1, Math.ceil(256 / Math.max(w, h)));
}

function picture(c: Canvas, meta?: Record<string, unknown>): Picture {
  return { png: c.toPng(), width: c.width, height: c.height, ...(meta ? { meta } : {}) };
}

/** Grey image of a slice, zoomed by pixel replication. */
function greyCanvas(slice: Slice, window: [number, number], zoom: number): Canvas {
  const c = new Canvas(slice.width * zoom, slice.height * zoom);
  for (let y = 0; y < c.height; y++) {
    const row = Math.floor(y / zoom) * slice.width;
    for (let x = 0; x < c.width; x++) {
      const g = windowed(slice.data[row + Math.floor(x / zoom)], window[0], window[1]);
      const o = (y * c.width + x) * 3;
      c.data[o] = g; c.data[o + 1] = g; c.data[o + 2] = g;
    }
  }
  return c;
}

/**
 * Draw the contours of a label slice onto a canvas of any size (the labels are mapped by nearest
 * neighbour onto the canvas pixels). A canvas pixel is on a contour when one of its 4 neighbours maps to
 * a different label; it takes the colour of its own label, so a boundary between two structures shows
 * both colours side by side and a boundary with background is drawn just inside the structure.
 */
function drawContours(c: Canvas, labels: Slice, only?: ReadonlySet<number>): void {
  const sx = labels.width / c.width, sy = labels.height / c.height;
  const at = (x: number, y: number) => labels.data[Math.min(labels.width - 1, Math.floor(x * sx)) + labels.width * Math.min(labels.height - 1, Math.floor(y * sy))];
  const colours = new Map<number, Rgb>();
  for (let y = 0; y < c.height; y++) {
    for (let x = 0; x < c.width; x++) {
      const l = at(x, y);
      if (l === 0 || (only && !only.has(l))) continue;
      const edge = (x > 0 && at(x - 1, y) !== l) || (x < c.width - 1 && at(x + 1, y) !== l) || (y > 0 && at(x, y - 1) !== l) || (y < c.height - 1 && at(x, y + 1) !== l);
      if (!edge) continue;
      let col = colours.get(l);
      if (!col) { col = labelColor(l); colours.set(l, col); }
      c.setPixel(x, y, col);
    }
  }
}

export interface SlicePanelInput {
  /** Fixed image on the grid `dims`. */
  fixed: ArrayLike<number>;
  /** Moving image before registration, on `movingDims` (default: `dims`). */
  moving: ArrayLike<number>;
  /** Moving image warped onto the fixed grid `dims`. */
  warped: ArrayLike<number>;
  dims: readonly number[];
  movingDims?: readonly number[];
  /** Fixed label map (grid `dims`): its contours are drawn on all three images. */
  fixedLabels?: ArrayLike<number>;
  /** Warped moving labels (grid `dims`): when given, a fourth panel shows their contours on the fixed image. */
  warpedLabels?: ArrayLike<number>;
  axis: Axis;
  /** Slice index along `axis` on the fixed grid (the moving slice is the proportional one). */
  index: number;
  /** Labels to outline (default: every non-zero label). */
  labels?: readonly number[];
  /** Integer pixel replication (default: larger side ≥ 256 px). */
  zoom?: number;
  /** Intensity windows; default 1st–99th percentile of non-zero voxels, moving and warped sharing the moving one. */
  fixedWindow?: [number, number];
  movingWindow?: [number, number];
}

/**
 * Fixed | moving | warped side by side (plus "warped labels on fixed" when warped labels are given), each
 * intensity-windowed, with the fixed labels' contours in colour on all three: on the fixed image they
 * trace the anatomy, on the moving image they show the misalignment before registration, and on the
 * warped image what is left of it.
 */
export function slicePanel(input: SlicePanelInput): Picture {
  const { dims, axis, index } = input;
  const movingDims = input.movingDims ?? dims;
  const movingIndex = dims[axis] > 1 ? Math.round((index * (movingDims[axis] - 1)) / (dims[axis] - 1)) : 0;
  const fixedSlice = extractSlice(input.fixed, dims, axis, index);
  const movingSlice = extractSlice(input.moving, movingDims, axis, movingIndex);
  const warpedSlice = extractSlice(input.warped, dims, axis, index);
  const zoom = autoZoom(fixedSlice.width, fixedSlice.height, input.zoom);
  const fixedWindow = input.fixedWindow ?? intensityWindow(input.fixed);
  const movingWindow = input.movingWindow ?? intensityWindow(input.moving);
  const only = input.labels ? new Set(input.labels) : undefined;
  const fixedLabelSlice = input.fixedLabels ? extractSlice(input.fixedLabels, dims, axis, index) : undefined;

  const panels: Array<{ title: string; canvas: Canvas }> = [];
  const withContours = (title: string, slice: Slice, window: [number, number], labels?: Slice) => {
    // The moving panel keeps the fixed panel's on-screen size so the three line up.
    const canvas = greyCanvas(slice, window, zoom);
    const sized = canvas.width === fixedSlice.width * zoom && canvas.height === fixedSlice.height * zoom ? canvas : resizeNearest(canvas, fixedSlice.width * zoom, fixedSlice.height * zoom);
    if (labels) drawContours(sized, labels, only);
    panels.push({ title, canvas: sized });
  };
  withContours('FIXED', fixedSlice, fixedWindow, fixedLabelSlice);
  withContours('MOVING', movingSlice, movingWindow, fixedLabelSlice);
  withContours('WARPED', warpedSlice, movingWindow, fixedLabelSlice);
  if (input.warpedLabels) withContours('WARPED LABELS', fixedSlice, fixedWindow, extractSlice(input.warpedLabels, dims, axis, index));

  const titleScale = 2;
  const top = MARGIN + LINE_HEIGHT * titleScale;
  const footer = LINE_HEIGHT + MARGIN;
  const pw = panels[0].canvas.width, ph = panels[0].canvas.height;
  const out = new Canvas(MARGIN + panels.length * (pw + MARGIN), top + ph + MARGIN + footer, BACKGROUND);
  panels.forEach((p, n) => {
    const x = MARGIN + n * (pw + MARGIN);
    out.text(p.title, x + Math.max(0, (pw - textWidth(p.title, titleScale)) >> 1), MARGIN, TEXT, { scale: titleScale });
    out.blit(p.canvas, x, top);
  });
  const axisName = 'IJK'[axis];
  out.text(`${axisName} = ${index} OF ${dims[axis]}${input.fixedLabels ? '   CONTOURS: FIXED LABELS' : ''}${input.warpedLabels ? ' (LAST PANEL: WARPED LABELS)' : ''}`, MARGIN, top + ph + MARGIN, MUTED);
  return picture(out, { axis, index, panels: panels.map((p) => p.title), zoom });
}

function resizeNearest(src: Canvas, width: number, height: number): Canvas {
  const out = new Canvas(width, height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(src.height - 1, Math.floor((y * src.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(src.width - 1, Math.floor((x * src.width) / width));
      const s = (sy * src.width + sx) * 3, t = (y * width + x) * 3;
      out.data[t] = src.data[s]; out.data[t + 1] = src.data[s + 1]; out.data[t + 2] = src.data[s + 2];
    }
  }
  return out;
}

export interface GridPictureOptions {
  /** Scalar image on the field's grid drawn dimmed underneath (the moving image warped or not: see doc). */
  background?: ArrayLike<number>;
  /** Voxels between grid lines (default 8). */
  step?: number;
  zoom?: number;
  color?: Rgb;
}

/**
 * Deformed grid: the lines of a regular grid on the fixed slice (every `step` voxels) pushed through
 * φ(p) = p + u(p), using the two in-plane components of the field (the through-plane component is not
 * drawn). Each point of a line lands where that fixed voxel samples the moving image, so straight
 * parallel lines mean no deformation, bunching means compression, crossing lines mean folding.
 */
export function gridPicture(field: ArrayLike<number>, dims: readonly number[], axis: Axis, index: number, opts: GridPictureOptions = {}): Picture {
  const n = dims[0] * dims[1] * dims[2];
  if (field.length !== 3 * n) throw new Error(`gridPicture: a 3-component field on [${dims.join(', ')}] has ${3 * n} values, got ${field.length}`);
  const du = extractSlice(field, dims, axis, index, { components: 3, component: axis === 0 ? 1 : 0 });
  const dv = extractSlice(field, dims, axis, index, { components: 3, component: axis === 2 ? 1 : 2 });
  const { width: w, height: h } = du;
  const zoom = autoZoom(w, h, opts.zoom);
  const step = opts.step ?? 8;
  const color = opts.color ?? [255, 210, 40];
  let base: Canvas;
  if (opts.background) {
    const bg = extractSlice(opts.background, dims, axis, index);
    base = greyCanvas(bg, intensityWindow(opts.background), zoom);
    for (let q = 0; q < base.data.length; q++) base.data[q] = Math.round(base.data[q] * 0.55); // dim so the lines stand out
  } else base = new Canvas(w * zoom, h * zoom, [30, 30, 30]);
  // Slice pixel (x, y) has v = h − 1 − y; displacement along v is upward on screen, hence the minus sign.
  // Undeformed points land on a whole screen pixel inside the zoomed voxel, so flat lines stay crisp
  // instead of being split half-and-half between two pixel rows by the anti-aliasing.
  const centre = Math.floor(zoom / 2);
  const screen = (x: number, y: number): [number, number] => {
    const q = x + w * y;
    return [(x + du.data[q]) * zoom + centre, (y - dv.data[q]) * zoom + centre];
  };
  const linesAlong = (horizontal: boolean) => {
    const across = horizontal ? h : w, along = horizontal ? w : h;
    // Lines on v = 0, step, 2·step ... counted from the bottom row, so they sit on voxel rows of the volume.
    for (let t = horizontal ? (h - 1) % step : 0; t < across; t += step) {
      let prev = horizontal ? screen(0, t) : screen(t, 0);
      for (let s = 1; s < along; s++) {
        const cur = horizontal ? screen(s, t) : screen(t, s);
        base.line(prev[0], prev[1], cur[0], cur[1], color, 0.9);
        prev = cur;
      }
    }
  };
  linesAlong(true);
  linesAlong(false);

  const top = MARGIN + LINE_HEIGHT * 2;
  const out = new Canvas(base.width + 2 * MARGIN, top + base.height + MARGIN + LINE_HEIGHT + MARGIN, BACKGROUND);
  out.text('DEFORMED GRID', MARGIN, MARGIN, TEXT, { scale: 2 });
  out.blit(base, MARGIN, top);
  out.text(`${'IJK'[axis]} = ${index}, LINES EVERY ${step} VOXELS`, MARGIN, top + base.height + MARGIN, MUTED);
  return picture(out, { axis, index, step, zoom });
}

export interface JacobianPictureOptions {
  zoom?: number;
  /** Colour range in log2 units: det = 2^±range saturate (default 1: 0.5 … 2). */
  range?: number;
  title?: string;
}

function formatTick(v: number): string {
  if (v >= 10 || Number.isInteger(v)) return String(Math.round(v * 100) / 100);
  return v.toPrecision(2).replace(/0+$/, '').replace(/\.$/, '');
}

/**
 * Jacobian determinant slice in a diverging colour map centred at 1 (blue = compression, white = volume
 * kept, red = expansion, log2 scale saturating at 2^±range), folds (det J ≤ 0) in green, with a colour bar
 * and the fold fraction of this slice and of the whole volume.
 */
export function jacobianPicture(detJ: ArrayLike<number>, dims: readonly number[], axis: Axis, index: number, opts: JacobianPictureOptions = {}): Picture {
  const slice = extractSlice(detJ, dims, axis, index);
  const zoom = autoZoom(slice.width, slice.height, opts.zoom);
  const range = opts.range ?? 1;
  if (!(range > 0)) throw new Error(`jacobianPicture: range must be positive, got ${range}`);
  const map = new Canvas(slice.width * zoom, slice.height * zoom);
  let sliceFolds = 0;
  for (let q = 0; q < slice.data.length; q++) if (slice.data[q] <= 0) sliceFolds++;
  for (let y = 0; y < map.height; y++) for (let x = 0; x < map.width; x++) map.setPixel(x, y, jacobianColor(slice.data[Math.floor(x / zoom) + slice.width * Math.floor(y / zoom)], range));
  let volumeFolds = 0;
  for (let q = 0; q < detJ.length; q++) if (detJ[q] <= 0) volumeFolds++;

  const barWidth = 16, tickLen = 4;
  const ticks = [-range, -range / 2, 0, range / 2, range].map((e) => 2 ** e);
  const labelWidth = Math.max(...ticks.map((t) => textWidth(formatTick(t))), textWidth('DET J ≤ 0'));
  const top = MARGIN + LINE_HEIGHT * 2;
  const footer = 2 * LINE_HEIGHT + MARGIN;
  const pct = (k: number, of: number) => `${((100 * k) / of).toFixed(k && (100 * k) / of < 0.01 ? 4 : 2)}%`;
  const footLines = [
    `${'IJK'[axis]} = ${index}   FOLDS (DET J ≤ 0): SLICE ${pct(sliceFolds, slice.data.length)}, VOLUME ${pct(volumeFolds, detJ.length)}`,
    'BLUE < 1 (SHRINK)  WHITE = 1  RED > 1 (GROW), LOG SCALE',
  ];
  // The canvas is as wide as the widest of: map + colour bar, the title, the footer lines.
  const width = Math.max(
    MARGIN + map.width + 2 * MARGIN + barWidth + tickLen + 3 + labelWidth + MARGIN,
    MARGIN + textWidth(opts.title ?? 'JACOBIAN DETERMINANT', 2) + MARGIN,
    ...footLines.map((line) => MARGIN + textWidth(line) + MARGIN),
  );
  const out = new Canvas(width, top + map.height + MARGIN + footer, BACKGROUND);
  out.text(opts.title ?? 'JACOBIAN DETERMINANT', MARGIN, MARGIN, TEXT, { scale: 2 });
  out.blit(map, MARGIN, top);

  // Colour bar: top = det 2^range, bottom = 2^−range, linear in log2; the fold swatch sits below it.
  const barX = MARGIN + map.width + 2 * MARGIN;
  const swatch = 14;
  const barH = Math.max(40, map.height - swatch - LINE_HEIGHT - 4);
  for (let y = 0; y < barH; y++) {
    const e = range - (2 * range * y) / (barH - 1);
    out.fillRect(barX, top + y, barWidth, 1, jacobianColor(2 ** e, range));
  }
  out.strokeRect(barX - 1, top - 1, barWidth + 2, barH + 2, MUTED);
  for (const t of ticks) {
    const y = Math.round(top + ((range - Math.log2(t)) / (2 * range)) * (barH - 1));
    out.line(barX + barWidth, y, barX + barWidth + tickLen, y, TEXT);
    out.text(formatTick(t), barX + barWidth + tickLen + 3, y - 3, TEXT);
  }
  const swatchY = top + barH + LINE_HEIGHT;
  out.fillRect(barX, swatchY, barWidth, swatch, FOLD_COLOR);
  out.text('DET J ≤ 0', barX + barWidth + tickLen + 3, swatchY + 4, TEXT);

  const footY = top + map.height + MARGIN;
  footLines.forEach((line, n) => out.text(line, MARGIN, footY + n * LINE_HEIGHT, MUTED));
  return picture(out, { axis, index, zoom, range, sliceFoldPercent: (100 * sliceFolds) / slice.data.length, volumeFoldPercent: (100 * volumeFolds) / detJ.length });
}
