/**
 * An RGB drawing surface for the pictures: filled rectangles, lines, circles, text in the 5×7 font
 * (horizontal or rotated to read bottom-to-top), blitting, and PNG output. Everything clips at the
 * edges, so callers can draw without bounds checks.
 */
import { CHAR_ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH, glyph } from './font.ts';
import { encodePng, type RasterImage } from './png.ts';

export type Rgb = readonly [number, number, number];

export const WHITE: Rgb = [255, 255, 255];
export const BLACK: Rgb = [0, 0, 0];

export class Canvas {
  readonly width: number;
  readonly height: number;
  /** RGB bytes, row-major, top row first. */
  readonly data: Uint8Array;

  constructor(width: number, height: number, background: Rgb = BLACK) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new Error(`Canvas: bad size ${width}×${height}`);
    this.width = width;
    this.height = height;
    this.data = new Uint8Array(width * height * 3);
    this.fillRect(0, 0, width, height, background);
  }

  setPixel(x: number, y: number, c: Rgb): void {
    x = Math.floor(x); y = Math.floor(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = (y * this.width + x) * 3;
    this.data[o] = c[0]; this.data[o + 1] = c[1]; this.data[o + 2] = c[2];
  }

  /** Mix colour c into the pixel with weight alpha ∈ [0, 1]. */
  blendPixel(x: number, y: number, c: Rgb, alpha: number): void {
    x = Math.floor(x); y = Math.floor(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || alpha <= 0) return;
    const a = Math.min(alpha, 1);
    const o = (y * this.width + x) * 3;
    for (let ch = 0; ch < 3; ch++) this.data[o + ch] = Math.round(this.data[o + ch] * (1 - a) + c[ch] * a);
  }

  fillRect(x: number, y: number, w: number, h: number, c: Rgb): void {
    const x0 = Math.max(0, Math.floor(x)), y0 = Math.max(0, Math.floor(y));
    const x1 = Math.min(this.width, Math.floor(x + w)), y1 = Math.min(this.height, Math.floor(y + h));
    for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) {
      const o = (yy * this.width + xx) * 3;
      this.data[o] = c[0]; this.data[o + 1] = c[1]; this.data[o + 2] = c[2];
    }
  }

  strokeRect(x: number, y: number, w: number, h: number, c: Rgb): void {
    this.line(x, y, x + w - 1, y, c);
    this.line(x, y + h - 1, x + w - 1, y + h - 1, c);
    this.line(x, y, x, y + h - 1, c);
    this.line(x + w - 1, y, x + w - 1, y + h - 1, c);
  }

  /**
   * Anti-aliased line between real-valued points (Xiaolin Wu's idea in its simplest form: step along
   * the major axis and split each sample between the two nearest pixels). Deformed grid lines need
   * sub-pixel positions; integer endpoints give crisp axis-aligned lines.
   */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, alpha = 1): void {
    const dx = x1 - x0, dy = y1 - y0;
    const steps = Math.max(Math.abs(dx), Math.abs(dy));
    if (steps === 0) { this.blendPixel(x0, y0, c, alpha); return; }
    const n = Math.ceil(steps);
    const horizontal = Math.abs(dx) >= Math.abs(dy);
    for (let s = 0; s <= n; s++) {
      const t = s / n;
      const x = x0 + dx * t, y = y0 + dy * t;
      if (horizontal) {
        const yf = Math.floor(y), fy = y - yf;
        this.blendPixel(x, yf, c, alpha * (1 - fy));
        this.blendPixel(x, yf + 1, c, alpha * fy);
      } else {
        const xf = Math.floor(x), fx = x - xf;
        this.blendPixel(xf, y, c, alpha * (1 - fx));
        this.blendPixel(xf + 1, y, c, alpha * fx);
      }
    }
  }

  /** Outline of a circle (outliers in box plots). */
  circle(cx: number, cy: number, r: number, c: Rgb): void {
    const n = Math.max(8, Math.ceil(2 * Math.PI * r * 2));
    for (let s = 0; s < n; s++) {
      const a = (2 * Math.PI * s) / n;
      this.setPixel(Math.round(cx + r * Math.cos(a)), Math.round(cy + r * Math.sin(a)), c);
    }
  }

  /**
   * Text in the 5×7 font with its top-left corner at (x, y). `vertical` rotates it 90° counter-clockwise
   * (reading bottom to top, as axis titles and long tick labels are set); then (x, y) is the top-left of
   * the rotated block and the text runs upward from its bottom.
   */
  text(str: string, x: number, y: number, c: Rgb, opts: { scale?: number; vertical?: boolean } = {}): void {
    const scale = opts.scale ?? 1;
    const chars = [...str];
    const length = chars.length * CHAR_ADVANCE * scale;
    chars.forEach((ch, n) => {
      const rows = glyph(ch);
      for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
        for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
          if (!((rows[gy] >> (GLYPH_WIDTH - 1 - gx)) & 1)) continue;
          // Glyph pixel (u along the text, v across it) at `scale`.
          const u = n * CHAR_ADVANCE * scale + gx * scale, v = gy * scale;
          if (opts.vertical) this.fillRect(x + v, y + length - 1 - u - (scale - 1), scale, scale, c);
          else this.fillRect(x + u, y + v, scale, scale, c);
        }
      }
    });
  }

  /** Copy another canvas in with its top-left corner at (x, y). */
  blit(src: Canvas, x: number, y: number): void {
    for (let yy = 0; yy < src.height; yy++) {
      const ty = y + yy;
      if (ty < 0 || ty >= this.height) continue;
      for (let xx = 0; xx < src.width; xx++) {
        const tx = x + xx;
        if (tx < 0 || tx >= this.width) continue;
        const s = (yy * src.width + xx) * 3, t = (ty * this.width + tx) * 3;
        this.data[t] = src.data[s]; this.data[t + 1] = src.data[s + 1]; this.data[t + 2] = src.data[s + 2];
      }
    }
  }

  toRaster(): RasterImage {
    return { width: this.width, height: this.height, channels: 3, data: this.data };
  }

  toPng(): Buffer {
    return encodePng(this.toRaster());
  }
}
