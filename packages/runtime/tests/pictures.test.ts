/**
 * Pictures: the PNG codec (checked against a hand-made zlib stream and known CRCs), the font, and each
 * picture's size, orientation and colours on small volumes with known content, plus one real pair.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { jacobianDeterminant, readLabelMap, readNifti, smoothRandomField, upsampleField, warpNearest, warpTrilinear, type Vec3 } from '@llmed/imaging';
import {
  boxPlot,
  boxStats,
  Canvas,
  crc32,
  decodePng,
  encodePng,
  extractSlice,
  FOLD_COLOR,
  glyph,
  gridPicture,
  jacobianPicture,
  labelColor,
  linePlot,
  niceStep,
  savePicture,
  slicePanel,
  textWidth,
} from '../src/index.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SHARED_DATA = process.env.LLMED_SHARED_DATA ?? path.resolve(repoRoot, '../shared/data');
const hasShared = existsSync(path.join(SHARED_DATA, 'brain/vxm_subject_t1.nii.gz'));
if (!hasShared) console.warn(`[pictures tests] ${SHARED_DATA} not found: the real-pair picture test is SKIPPED`);

const tmp = mkdtempSync(path.join(tmpdir(), 'llmed-pictures-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Read the IHDR fields and inflate the IDAT stream by hand (independent of decodePng). */
function rawPng(bytes: Buffer): { width: number; height: number; colourType: number; rows: Buffer } {
  expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  expect(bytes.toString('ascii', 12, 16)).toBe('IHDR');
  const width = bytes.readUInt32BE(16), height = bytes.readUInt32BE(20), colourType = bytes[25];
  const idat: Buffer[] = [];
  for (let pos = 8; pos < bytes.length;) {
    const len = bytes.readUInt32BE(pos);
    if (bytes.toString('ascii', pos + 4, pos + 8) === 'IDAT') idat.push(bytes.subarray(pos + 8, pos + 8 + len));
    pos += 12 + len;
  }
  return { width, height, colourType, rows: inflateSync(Buffer.concat(idat)) };
}

function pixel(img: { width: number; channels: number; data: Uint8Array }, x: number, y: number): number[] {
  const o = (y * img.width + x) * img.channels;
  return [...img.data.subarray(o, o + 3)];
}

describe('PNG codec', () => {
  it('CRC-32 matches the standard check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });

  it('encodes RGB and RGBA that zlib inflates to filter byte + row bytes; decodePng round-trips', () => {
    for (const channels of [3, 4] as const) {
      const width = 7, height = 5;
      const data = new Uint8Array(width * height * channels).map((_, q) => (q * 37) & 0xff);
      const png = encodePng({ width, height, channels, data });
      const raw = rawPng(png);
      expect([raw.width, raw.height, raw.colourType]).toEqual([7, 5, channels === 3 ? 2 : 6]);
      expect(raw.rows.length).toBe((width * channels + 1) * height);
      expect(raw.rows[0]).toBe(0);
      expect([...raw.rows.subarray(1, 1 + width * channels)]).toEqual([...data.subarray(0, width * channels)]);
      const back = decodePng(png);
      expect(back.channels).toBe(channels);
      expect([...back.data]).toEqual([...data]);
    }
  });

  it('decodePng rejects a corrupted chunk and a non-PNG', () => {
    const png = encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(12) });
    const bad = Buffer.from(png);
    bad[20] ^= 1; // inside IHDR
    expect(() => decodePng(bad)).toThrow(/bad CRC in chunk IHDR/);
    expect(() => decodePng(Buffer.from('not a png at all'))).toThrow(/not a PNG/);
  });
});

describe('font and canvas', () => {
  it('has glyphs for letters, digits and punctuation used in the pictures', () => {
    for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-+:/()%=<>≤') expect(glyph(ch)).toHaveLength(7);
    expect(glyph('a')).toEqual(glyph('A'));
    expect(glyph('~')).toEqual(glyph('?'));
    expect(textWidth('ABC')).toBe(17);
    expect(textWidth('ABC', 2)).toBe(34);
  });

  it('draws text horizontally and rotated (reading upward)', () => {
    const c = new Canvas(20, 20);
    c.text('L', 0, 0, [255, 255, 255]);
    expect(pixel(c.toRaster(), 0, 0)).toEqual([255, 255, 255]); // L's stem
    expect(pixel(c.toRaster(), 4, 6)).toEqual([255, 255, 255]); // L's foot
    expect(pixel(c.toRaster(), 4, 0)).toEqual([0, 0, 0]);
    const v = new Canvas(20, 20);
    v.text('L', 0, 0, [255, 255, 255], { vertical: true });
    // Rotated 90° counter-clockwise: the stem runs along the bottom row of the 7×6 block, the foot up the right.
    expect(pixel(v.toRaster(), 0, 5)).toEqual([255, 255, 255]);
    expect(pixel(v.toRaster(), 6, 1)).toEqual([255, 255, 255]);
    expect(pixel(v.toRaster(), 0, 0)).toEqual([0, 0, 0]);
  });
});

describe('slices', () => {
  it('u runs right along the first in-plane axis, v runs up', () => {
    const dims: Vec3 = [4, 3, 2];
    const vol = new Float32Array(24).map((_, q) => q); // value = i + 4j + 12k
    const s = extractSlice(vol, dims, 2, 1);
    expect([s.width, s.height]).toEqual([4, 3]);
    expect(s.data[0 + 4 * 2]).toBe(12); // bottom-left = (i 0, j 0, k 1)
    expect(s.data[3 + 4 * 0]).toBe(3 + 4 * 2 + 12); // top-right = (i 3, j 2)
    const sag = extractSlice(vol, dims, 0, 2);
    expect([sag.width, sag.height]).toEqual([3, 2]); // (j, k)
    expect(sag.data[0 + 3 * 1]).toBe(2); // bottom-left = (i 2, j 0, k 0)
    expect(() => extractSlice(vol, dims, 2, 2)).toThrow(/index 2 outside 0..1/);
  });
});

describe('pictures of small volumes', () => {
  const dims: Vec3 = [20, 16, 12];
  const n = 20 * 16 * 12;
  const fixed = new Float32Array(n), labels = new Int32Array(n);
  for (let k = 0; k < 12; k++) for (let j = 0; j < 16; j++) for (let i = 0; i < 20; i++) {
    const q = i + 20 * (j + 16 * k);
    fixed[q] = 10 + i; // a ramp so the window is non-trivial
    if (i >= 5 && i < 15 && j >= 4 && j < 12) labels[q] = 3;
  }

  it('slicePanel: three panels of the zoomed slice with fixed contours; four with warped labels', () => {
    const p = slicePanel({ fixed, moving: fixed, warped: fixed, dims, fixedLabels: labels, axis: 2, index: 6, zoom: 2 });
    const top = 8 + 9 * 2, footer = 9 + 8;
    expect([p.width, p.height]).toEqual([8 + 3 * (40 + 8), top + 32 + 8 + footer]);
    const img = decodePng(p.png);
    expect([img.width, img.height]).toEqual([p.width, p.height]);
    // Contour of label 3: the label's left edge is voxel i = 5 → zoomed x = 10 inside the first panel.
    const y = top + 2 * 8; // a row in the middle of the label (display row 8 = j 7)
    expect(pixel(img, 8 + 10, y)).toEqual([...labelColor(3)]);
    expect(pixel(img, 8 + 14, y)).not.toEqual([...labelColor(3)]); // interior is the grey image
    // The same contour on the moving and warped panels.
    expect(pixel(img, 8 + 48 + 10, y)).toEqual([...labelColor(3)]);
    expect(pixel(img, 8 + 96 + 10, y)).toEqual([...labelColor(3)]);
    const four = slicePanel({ fixed, moving: fixed, warped: fixed, dims, fixedLabels: labels, warpedLabels: labels, axis: 2, index: 6, zoom: 2 });
    expect(four.width).toBe(8 + 4 * 48);
    expect(four.meta?.panels).toEqual(['FIXED', 'MOVING', 'WARPED', 'WARPED LABELS']);
  });

  it('gridPicture: a zero field gives straight lines every `step` voxels', () => {
    const p = gridPicture(new Float32Array(3 * n), dims, 2, 6, { step: 5, zoom: 2 });
    const img = decodePng(p.png);
    const top = 8 + 18;
    // Vertical lines at u = 0, 5, 10, 15 → screen x = 8 + 2u + 1.
    expect(pixel(img, 8 + 2 * 5 + 1, top + 7)[0]).toBeGreaterThan(200);
    expect(pixel(img, 8 + 2 * 7 + 1, top + 7)[0]).toBeLessThan(80);
    expect([img.width, img.height]).toEqual([p.width, p.height]);
  });

  it('jacobianPicture: det = 1 is white, folds are green, the fold share is reported', () => {
    const det = new Float32Array(n).fill(1);
    for (let k = 0; k < 12; k++) det[2 + 20 * (3 + 16 * k)] = -0.5; // one folded voxel per slice at (2, 3)
    const p = jacobianPicture(det, dims, 2, 6, { zoom: 2 });
    const img = decodePng(p.png);
    const top = 8 + 18;
    expect(pixel(img, 8 + 30, top + 4)).toEqual([255, 255, 255]);
    // (i 2, j 3) → display row 16 − 1 − 3 = 12 → y = top + 24.
    expect(pixel(img, 8 + 4, top + 24)).toEqual([...FOLD_COLOR]);
    expect(p.meta?.sliceFoldPercent).toBeCloseTo(100 / (20 * 16), 10);
    expect(p.meta?.volumeFoldPercent).toBeCloseTo(100 / (20 * 16), 10);
  });

  it('jacobianPicture of a real determinant field has the map, bar and text', () => {
    const field = upsampleField(smoothRandomField([5, 4, 3], { maxDisplacement: 1.5, smoothness: 1, seed: 2 }), [5, 4, 3], dims);
    const p = jacobianPicture(jacobianDeterminant(field, dims), dims, 1, 8);
    expect(decodePng(p.png).width).toBe(p.width);
  });
});

describe('box plot', () => {
  it('boxStats: numpy-linear quartiles, Tukey whiskers, outliers, NaN left out', () => {
    const s = boxStats([1, 2, 3, 4, 5, 6, 7, 8, 100, NaN]);
    expect(s.n).toBe(9);
    expect(s.missing).toBe(1);
    expect([s.q1, s.median, s.q3]).toEqual([3, 5, 7]);
    expect(s.whiskerLow).toBe(1);
    expect(s.whiskerHigh).toBe(8);
    expect(s.outliers).toEqual([100]);
    expect(niceStep(0, 1)).toBeCloseTo(0.2, 12);
    expect(niceStep(-0.03, 0.98)).toBeCloseTo(0.2, 12);
  });

  it('draws one box per label in the given order, labels under the axis, meta with the stats', async () => {
    const perLabel = { 'Left-Hippocampus': [0.8, 0.82, 0.79, 0.6, 0.85], Thalamus: [0.9, 0.88, 0.91, 0.9], Empty: [NaN, NaN] };
    const p = boxPlot(perLabel, { title: 'DICE', yLabel: 'DICE', order: ['Thalamus', 'Left-Hippocampus', 'Empty'], height: 300 });
    const img = decodePng(p.png);
    expect([img.width, img.height]).toEqual([p.width, p.height]);
    expect(p.height).toBe(300);
    expect(p.meta?.labels).toEqual(['Thalamus', 'Left-Hippocampus', 'Empty']);
    // Some ink below the plot where the rotated label names are.
    let ink = 0;
    for (let y = 300 - 60; y < 300; y++) for (let x = 0; x < img.width; x++) if (pixel(img, x, y)[0] < 100) ink++;
    expect(ink).toBeGreaterThan(50);
    const written = await savePicture(path.join(tmp, 'plots/box.png'), p, { meta: true });
    expect(written).toEqual([path.join(tmp, 'plots/box.png'), path.join(tmp, 'plots/box.json')]);
    const meta = JSON.parse(readFileSync(path.join(tmp, 'plots/box.json'), 'utf8'));
    expect(meta.labels).toEqual(['Thalamus', 'Left-Hippocampus', 'Empty']);
    expect(meta.stats.Empty.median).toBeNull();
    expect(readdirSync(path.join(tmp, 'plots')).sort()).toEqual(['box.json', 'box.png']); // no temp files left
    expect(() => boxPlot({ a: [1] }, { order: ['b'] })).toThrow(/order names 'b'/);
  });
});

describe('linePlot', () => {
  it('draws each series in its colour through its points, with the ranges in meta; rejects empty data', () => {
    const blue: [number, number, number] = [31, 119, 180];
    const p = linePlot([{ name: 'a', points: [[0, 0], [10, 1]], color: blue }, { name: 'b', points: [[0, 1], [5, NaN], [10, 0]] }],
      { title: 'T', xLabel: 'STEP', width: 300, height: 220, yRange: [0, 1] });
    const img = decodePng(p.png);
    expect([img.width, img.height]).toEqual([300, 220]);
    expect(p.meta).toEqual({ xRange: [0, 10], yRange: [0, 1], series: ['a', 'b'] });
    // Some pixels carry the first series' colour (its line and point markers), none is left unpainted black.
    let painted = 0, black = 0;
    for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) {
      const [r, g, b] = pixel(img, x, y);
      if (r === blue[0] && g === blue[1] && b === blue[2]) painted++;
      if (r === 0 && g === 0 && b === 0) black++;
    }
    expect(painted).toBeGreaterThan(50);
    expect(black).toBe(0);
    expect(() => linePlot([{ name: 'x', points: [[0, NaN]] }])).toThrow(/no finite points/);
  });
});

describe.skipIf(!hasShared)('pictures of a real pair (vxm_subject T1 + aseg, random deformation)', () => {
  it('renders panel, grid and Jacobian map at the expected sizes', async () => {
    const t1 = await readNifti(path.join(SHARED_DATA, 'brain/vxm_subject_t1.nii.gz'));
    const aseg = await readLabelMap(path.join(SHARED_DATA, 'brain/vxm_subject_aseg.nii.gz'));
    const dims = t1.dims;
    const coarse: Vec3 = [Math.ceil(dims[0] / 8), Math.ceil(dims[1] / 8), Math.ceil(dims[2] / 8)];
    const field = upsampleField(smoothRandomField(coarse, { maxDisplacement: 1, smoothness: 1, seed: 3 }), coarse, dims);
    const moving = warpTrilinear(t1.data, dims, field, dims);
    const warpedLabels = warpNearest(aseg.data, dims, field, dims);
    const panel = slicePanel({ fixed: t1.data, moving, warped: t1.data, dims, fixedLabels: aseg.data, warpedLabels, axis: 2, index: 112 });
    // 160 × 192 slice, zoom 2 (larger side ≥ 256), four panels.
    expect([panel.width, panel.height]).toEqual([8 + 4 * (320 + 8), 26 + 384 + 8 + 17]);
    const grid = gridPicture(field, dims, 2, 112, { background: moving });
    const jac = jacobianPicture(jacobianDeterminant(field, dims), dims, 2, 112);
    for (const [name, pic] of [['panel', panel], ['grid', grid], ['jacobian', jac]] as const) {
      const file = path.join(tmp, `real-${name}.png`);
      await savePicture(file, pic);
      const img = decodePng(readFileSync(file));
      expect([img.width, img.height]).toEqual([pic.width, pic.height]);
    }
  }, 120_000);
});
