/**
 * Metrics: analytic cases (exact answers by construction) and cross-checks against an independent
 * numpy/scipy implementation (bridge/python/llmed/metrics_ref.py: scipy's distance_transform_edt with
 * sampling, binary_erosion surfaces, np.gradient Jacobians, np.percentile) on real label maps from
 * ../shared/data warped by smooth random fields.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dice,
  distanceTransform,
  endpointError,
  foldingPercent,
  hd95,
  jacobianDeterminant,
  l2rHd95,
  voxelBoundaryHd95,
  cellSurfaceAreas,
  l2rSdLogJacobian,
  percentileSorted,
  presentLabels,
  readLabelMap,
  robustPercentileSorted,
  sdLogJacobian,
  smoothRandomField,
  squaredDistanceTransform,
  surfaceDistances,
  surfaceVoxels,
  upsampleField,
  type Vec3,
  warpNearest,
} from '../src/index.ts';
import { hasPython, hasShared, makeTmp, repoRoot, runPython, shared, VENV_PYTHON } from './helpers.ts';

const REF_SCRIPT = path.join(repoRoot, 'bridge/python/llmed/metrics_ref.py');
// Whole-volume scipy references take tens of seconds on a busy 2-core machine.
const REAL_DATA_TIMEOUT_MS = 240_000;
const ASEG_EVAL_LABELS = [2, 3, 4, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 28, 31, 41, 42, 43, 46, 47, 49, 50, 51, 52, 53, 54, 60, 63];

if (!hasPython) console.warn('[metrics tests] no venv python with numpy/scipy: the scipy cross-checks are SKIPPED');
if (!hasShared) console.warn('[metrics tests] ../shared/data not found: the real-label-map cross-checks are SKIPPED');

const idx = (dims: readonly number[], i: number, j: number, k: number) => i + dims[0] * (j + dims[1] * k);

/** Binary ball of radius r (voxels) centred at c. */
function ball(dims: Vec3, c: readonly number[], r: number, value = 1): Int32Array {
  const out = new Int32Array(dims[0] * dims[1] * dims[2]);
  for (let k = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++) {
    if ((i - c[0]) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2 <= r * r) out[idx(dims, i, j, k)] = value;
  }
  return out;
}

/** Deterministic pseudo-random numbers in [0, 1). */
function uniform(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
}

describe('distance transform and surfaces', () => {
  it('squared EDT equals brute force on random features with anisotropic spacing', () => {
    const dims: Vec3 = [9, 7, 5];
    const spacing = [0.5, 1.7, 3];
    const rand = uniform(3);
    const n = dims[0] * dims[1] * dims[2];
    const features = new Uint8Array(n);
    for (let q = 0; q < n; q++) features[q] = rand() < 0.04 ? 1 : 0;
    features[idx(dims, 4, 3, 2)] = 1;
    const d2 = squaredDistanceTransform(features, dims, spacing);
    let worst = 0;
    for (let k = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++) {
      let best = Infinity;
      for (let c = 0; c < dims[2]; c++) for (let b = 0; b < dims[1]; b++) for (let a = 0; a < dims[0]; a++) {
        if (!features[idx(dims, a, b, c)]) continue;
        best = Math.min(best, ((i - a) * spacing[0]) ** 2 + ((j - b) * spacing[1]) ** 2 + ((k - c) * spacing[2]) ** 2);
      }
      worst = Math.max(worst, Math.abs(best - d2[idx(dims, i, j, k)]));
    }
    expect(worst).toBeLessThan(1e-9);
  });

  it('no features → +Infinity everywhere; a single row or column works', () => {
    expect([...squaredDistanceTransform(new Uint8Array(8), [2, 2, 2])].every((v) => v === Infinity)).toBe(true);
    expect([...distanceTransform(new Uint8Array([0, 0, 1, 0]), [4, 1, 1], [2, 1, 1])]).toEqual([4, 2, 0, 2]);
    expect([...distanceTransform(new Uint8Array([1, 0, 0, 0]), [1, 1, 4], [1, 1, 3])]).toEqual([0, 3, 6, 9]);
  });

  it('surface = voxels with a face neighbour outside (6-connectivity); the image border counts as outside', () => {
    const dims: Vec3 = [5, 5, 5];
    const cube = new Uint8Array(125);
    for (let k = 1; k < 4; k++) for (let j = 1; j < 4; j++) for (let i = 1; i < 4; i++) cube[idx(dims, i, j, k)] = 1;
    const s = surfaceVoxels(cube, dims);
    expect(s.reduce((a, b) => a + b, 0)).toBe(26); // 3³ minus the centre
    expect(s[idx(dims, 2, 2, 2)]).toBe(0);
    const full = surfaceVoxels(new Uint8Array(27).fill(1), [3, 3, 3]);
    expect(full.reduce((a, b) => a + b, 0)).toBe(26); // only the centre is interior
  });
});

describe('Dice', () => {
  const fixed = Int32Array.from([0, 1, 1, 2, 2, 2, 0, 0]);
  const warped = Int32Array.from([0, 1, 2, 2, 2, 0, 0, 5]);

  it('2|A∩B|/(|A|+|B|) per label; absent in both → NaN and out of the mean', () => {
    const r = dice(fixed, warped, [1, 2, 3]);
    expect(r.perLabel['1']).toBeCloseTo((2 * 1) / (2 + 1), 12);
    expect(r.perLabel['2']).toBeCloseTo((2 * 2) / (3 + 3), 12);
    expect(r.perLabel['3']).toBeNaN();
    expect(r.mean).toBeCloseTo((2 / 3 + 2 / 3) / 2, 12);
  });

  it("absentAs 'zero' (LLaMA-Reg) scores the absent label 0 and keeps it in the mean", () => {
    const r = dice(fixed, warped, [1, 2, 3], { absentAs: 'zero' });
    expect(r.perLabel['3']).toBe(0);
    expect(r.mean).toBeCloseTo((2 / 3 + 2 / 3 + 0) / 3, 12);
  });

  it('label present in one map only scores 0; big label ids go through the map path', () => {
    expect(dice(fixed, warped, [5]).perLabel['5']).toBe(0);
    expect(dice(Int32Array.from([70000, 0]), Int32Array.from([70000, 70000]), [70000]).perLabel['70000']).toBeCloseTo(2 / 3, 12);
    expect(presentLabels(fixed, warped)).toEqual([1, 2, 5]);
  });
});

describe('HD95 and l2r-HD95: analytic cases', () => {
  it('percentiles: numpy linear and the surface-distance library robust percentile', () => {
    const x = Float64Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(percentileSorted(x, 95)).toBeCloseTo(9.5, 12);
    expect(percentileSorted(Float64Array.from([2]), 95)).toBe(2);
    // (t+1)/n ≥ 0.95 first at t = 10 for n = 11 (10/11 = 0.909…)
    expect(robustPercentileSorted(x, 95)).toBe(10);
    expect(robustPercentileSorted(Float64Array.from(Array.from({ length: 20 }, (_, t) => t)), 95)).toBe(18);
  });

  it('two parallel planes d voxels apart along an anisotropic axis: HD95 = d·spacing exactly, l2r = d voxels', () => {
    const dims: Vec3 = [6, 5, 12];
    const a = new Int32Array(6 * 5 * 12), b = new Int32Array(6 * 5 * 12);
    for (let j = 0; j < 5; j++) for (let i = 0; i < 6; i++) { a[idx(dims, i, j, 3)] = 1; b[idx(dims, i, j, 7)] = 1; }
    expect(hd95(a, b, dims, [0.8, 0.8, 3], [1]).perLabel['1']).toBeCloseTo(4 * 3, 12);
    expect(l2rHd95(a, b, dims, [1]).perLabel['1']).toBe(4);
  });

  it('concentric spheres of radii 8 and 12: HD95 ≈ 4 (within a voxel)', () => {
    const dims: Vec3 = [32, 32, 32];
    const r = hd95(ball(dims, [16, 16, 16], 8), ball(dims, [16, 16, 16], 12), dims, [1, 1, 1], [1]).perLabel['1'];
    expect(Math.abs(r - 4)).toBeLessThanOrEqual(1);
  });

  it('two spheres of radius 10 offset by d = 4: HD95 ≈ d (continuous value 0.95·d), and it scales with spacing', () => {
    const dims: Vec3 = [36, 30, 30];
    const a = ball(dims, [15, 15, 15], 10), b = ball(dims, [19, 15, 15], 10);
    const vox = hd95(a, b, dims, [1, 1, 1], [1]).perLabel['1'];
    expect(Math.abs(vox - 4)).toBeLessThanOrEqual(Math.sqrt(3));
    // Isotropic scaling of the grid scales every distance.
    expect(hd95(a, b, dims, [2.5, 2.5, 2.5], [1]).perLabel['1']).toBeCloseTo(2.5 * vox, 10);
    // Identical masks: zero; one mask empty: NaN, left out of the mean.
    expect(hd95(a, a, dims, [1, 1, 1], [1]).perLabel['1']).toBe(0);
    const withEmpty = hd95(a, b, dims, [1, 1, 1], [1, 2]);
    expect(withEmpty.perLabel['2']).toBeNaN();
    expect(withEmpty.mean).toBe(vox);
  });

  it('surfaceDistances works on full-grid masks (crop is internal)', () => {
    const dims: Vec3 = [36, 30, 30];
    const { aToB, bToA } = surfaceDistances(ball(dims, [15, 15, 15], 10), ball(dims, [19, 15, 15], 10), dims);
    expect(aToB.length).toBeGreaterThan(100);
    expect(Math.max(...aToB)).toBeCloseTo(4, 6); // the far pole is exactly d away
    expect(Math.max(...bToA)).toBeCloseTo(4, 6);
  });
});

describe.skipIf(!hasPython)("l2r-hd95 is Learn2Reg's formula (DeepMind surface-distance, area-weighted corner surfels)", () => {
  it('the surface area of each of the 256 cell configurations equals the package table, at any spacing', () => {
    for (const spacing of [[1, 1, 1], [0.7, 1.3, 2.9]]) {
      // the package indexes corners by numpy axes (a, b, c) with weight 2^(7 − (4a + 2b + c)); ours by bit
      // 4a + 2b + c of (i, j, k) offsets, so code c here is the package's code with its bits reversed
      const ref = runPython<number[]>([
        'import sys, json, numpy as np',
        'np.bool = getattr(np, "bool", np.bool_); np.Inf = getattr(np, "Inf", np.inf)',
        'from surface_distance import lookup_tables as L',
        `t = L.create_table_neighbour_code_to_surface_area(${JSON.stringify(spacing)})`,
        'rev = lambda c: int(format(c, "08b")[::-1], 2)',
        'print(json.dumps([float(t[rev(c)]) for c in range(256)]))',
      ].join('\n'));
      const ours = cellSurfaceAreas(spacing);
      for (let c = 0; c < 256; c++) expect(ours[c], `configuration ${c}, spacing ${spacing}`).toBeCloseTo(ref[c], 12);
    }
  });

  it("Learn2Reg's rule for absent labels: NaN when missing from fixed or the unwarped moving map, ∞ when warped away", () => {
    const dims: Vec3 = [12, 12, 12];
    const fixed = ball(dims, [6, 6, 6], 3);
    const moving = Int32Array.from(ball(dims, [6, 6, 5], 3), (x) => x * 2); // label 2 in moving
    const warped = Int32Array.from(fixed, (x) => x * 2);
    const both = new Int32Array(fixed.length);
    for (let q = 0; q < fixed.length; q++) both[q] = fixed[q] ? 1 : 0;
    // label 1 is in fixed but not in the unwarped moving map → NaN even though the warped map has none either
    expect(l2rHd95(fixed, warped, dims, [1], { moving }).perLabel['1']).toBeNaN();
    // present in fixed and moving, absent from the warped map → +∞, and the mean with it
    const r = l2rHd95(fixed, new Int32Array(fixed.length), dims, [1], { moving: both });
    expect(r.perLabel['1']).toBe(Infinity);
    expect(r.mean).toBe(Infinity);
    const [ref] = reference<RefLabelResult[]>([{ op: 'l2r_hd95', fixed: rawFile(fixed), warped: rawFile(new Int32Array(fixed.length)), moving: rawFile(both), dims, labels: [1] }]);
    expect(ref.perLabel['1']).toBe(Infinity);
  });

  it('differs from the voxel-boundary variant: offset spheres', () => {
    const dims: Vec3 = [36, 30, 30];
    const a = ball(dims, [15, 15, 15], 10);
    const shifted = [[17.5, 15.5, 15, 8], [19, 15.5, 15, 9], [16.3, 14.2, 15.7, 6.5]].map(([x, y, z, r]) => ball(dims, [x, y, z], r));
    const official = shifted.map((b) => l2rHd95(a, b, dims, [1]).perLabel['1']);
    const refs = reference<RefLabelResult[]>(shifted.map((b) => ({ op: 'l2r_hd95', fixed: rawFile(a), warped: rawFile(b), dims, labels: [1] })));
    expect(official).toEqual(refs.map((r) => r.perLabel['1']));
    const boundary = shifted.map((b) => voxelBoundaryHd95(a, b, dims, [1]).perLabel['1']);
    expect(boundary.some((v, t) => v !== official[t]), `official ${official}, voxel boundary ${boundary}`).toBe(true);
  });
});

describe('Jacobian determinant and folding: analytic cases', () => {
  const dims: Vec3 = [7, 6, 5];
  const n = 7 * 6 * 5;

  it('identity field: det J = 1 everywhere, no folding, SDlogJ 0', () => {
    const det = jacobianDeterminant(new Float32Array(3 * n), dims);
    expect(det.every((v) => v === 1)).toBe(true);
    expect(foldingPercent(det)).toBe(0);
    expect(sdLogJacobian(det)).toBe(0);
    expect(l2rSdLogJacobian(det, dims)).toBeCloseTo(0, 12);
  });

  it('linear field u = A·x: det J = det(I + A) at every voxel, borders included; mm and voxel fields agree', () => {
    const A = [[0.1, 0.2, -0.05], [0.03, -0.2, 0.1], [0.05, 0.0, 0.3]];
    const spacing = [0.5, 2, 3];
    const u = new Float32Array(3 * n), uMm = new Float32Array(3 * n);
    for (let k = 0; k < 5; k++) for (let j = 0; j < 6; j++) for (let i = 0; i < 7; i++) {
      const p = idx(dims, i, j, k);
      for (let c = 0; c < 3; c++) {
        u[c * n + p] = A[c][0] * i + A[c][1] * j + A[c][2] * k;
        uMm[c * n + p] = u[c * n + p] * spacing[c];
      }
    }
    const M = A.map((row, c) => row.map((v, a) => v + (c === a ? 1 : 0)));
    const expected = M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) - M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) + M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]);
    const det = jacobianDeterminant(u, dims);
    const detMm = jacobianDeterminant(uMm, dims, { spacing });
    for (let p = 0; p < n; p++) {
      expect(det[p]).toBeCloseTo(expected, 5);
      expect(detMm[p]).toBeCloseTo(det[p], 5);
    }
  });

  it('a known fold: u_x(i) chosen so det J = 1 + central difference crosses 0 at known voxels; ≤ 0 vs < 0', () => {
    const line: Vec3 = [10, 3, 3];
    const m = 90;
    // u_x along i; det J = 1 + ∂u_x/∂i with np.gradient stencils:
    const ux = [0, 0, 0, -1, -3, -5, -5.5, -5.5, -5.5, -5.5];
    // ∂u_x/∂i: [0, 0, -0.5, -1.5, -2, -1.25, -0.25, 0, 0, 0] → det: [1, 1, 0.5, -0.5, -1, -0.25, 0.75, 1, 1, 1]
    const u = new Float32Array(3 * m);
    for (let k = 0; k < 3; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 10; i++) u[idx(line, i, j, k)] = ux[i];
    const det = jacobianDeterminant(u, line);
    expect([...det.subarray(0, 10)]).toEqual([1, 1, 0.5, -0.5, -1, -0.25, 0.75, 1, 1, 1]);
    expect(foldingPercent(det)).toBeCloseTo((100 * 3) / 10, 10);
    expect(foldingPercent(det, { strict: true })).toBeCloseTo((100 * 3) / 10, 10);
    // Make one determinant exactly 0: ∂u_x/∂i = −1 at i = 2 only counts for ≤ 0.
    const ux0 = [0, 0, 0, -2, -2, -2, -2, -2, -2, -2]; // gradient at i=2: (−2 − 0)/2 = −1 → det 0; at 3: −1 → 0
    for (let k = 0; k < 3; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 10; i++) u[idx(line, i, j, k)] = ux0[i];
    const det0 = jacobianDeterminant(u, line);
    expect([...det0.subarray(0, 10)]).toEqual([1, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
    expect(foldingPercent(det0)).toBeCloseTo(20, 10);
    expect(foldingPercent(det0, { strict: true })).toBe(0);
    // SDlogJ skips the folded voxels; l2r-sdlogj keeps them through the +3 shift.
    expect(sdLogJacobian(det)).toBeCloseTo(stdOf([1, 1, 0.5, 0.75, 1, 1, 1].map(Math.log)), 6);
  });
});

function stdOf(xs: number[]): number {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
}

// ------------------------------------------------------------------------------------------------------
// Cross-checks against numpy/scipy on real label maps.

interface RefLabelResult { perLabel: Record<string, number | null>; mean: number | null; seconds: number }
interface RefJacobian { nonpositive_percent: number; negative_percent: number; sdlogj: number | null; l2r_sdlogj: number | null; min: number; max: number; maxAbsDiff: number }

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => { tmp = makeTmp('llmed-metrics-'); });
afterAll(() => tmp?.cleanup());

let fileCounter = 0;
function rawFile(data: Int32Array | Float32Array): string {
  const file = path.join(tmp.dir, `a${fileCounter++}.raw`);
  writeFileSync(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return file;
}

function reference<T>(request: Record<string, unknown> | Array<Record<string, unknown>>): T {
  const req = path.join(tmp.dir, `req${fileCounter++}.json`);
  writeFileSync(req, JSON.stringify(request));
  const out = execFileSync(VENV_PYTHON, [REF_SCRIPT, req], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}

/** Largest |ours − ref| over labels, after checking both agree on which labels are NaN. */
function maxLabelDiff(ours: Record<string, number>, ref: Record<string, number | null>): number {
  let worst = 0;
  for (const [label, v] of Object.entries(ours)) {
    const r = ref[label];
    expect(Number.isNaN(v), `label ${label}: ours ${v}, scipy ${r}`).toBe(r === null);
    if (r !== null) worst = Math.max(worst, Math.abs(v - r));
  }
  return worst;
}

/** A smooth random field made on a 4× coarser grid and upsampled (cheap at full resolution). */
function randomField(dims: Vec3, maxDisplacementCoarse: number, seed: number): Float32Array {
  const coarse: Vec3 = [Math.ceil(dims[0] / 4), Math.ceil(dims[1] / 4), Math.ceil(dims[2] / 4)];
  return upsampleField(smoothRandomField(coarse, { maxDisplacement: maxDisplacementCoarse, smoothness: 2, seed }), coarse, dims);
}

/** Sub-block [lo, hi) of a label map. */
function cropVolume(data: Int32Array, dims: Vec3, lo: Vec3, hi: Vec3): { data: Int32Array; dims: Vec3 } {
  const out: Vec3 = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
  const res = new Int32Array(out[0] * out[1] * out[2]);
  for (let k = 0, o = 0; k < out[2]; k++) for (let j = 0; j < out[1]; j++) for (let i = 0; i < out[0]; i++, o++) res[o] = data[idx(dims, lo[0] + i, lo[1] + j, lo[2] + k)];
  return { data: res, dims: out };
}

const agreement: Record<string, number> = {};
afterAll(() => { if (Object.keys(agreement).length) console.log('[metrics tests] max |TypeScript − scipy|:', JSON.stringify(agreement)); });

function crossCheckLabels(name: string, fixed: Int32Array, warped: Int32Array, dims: Vec3, spacing: readonly number[], labels: number[]) {
  const files = { fixed: rawFile(fixed), warped: rawFile(warped), dims, spacing, labels };
  // One interpreter start for the three (importing scipy costs about a second).
  const [dRef, hRef, lRef, vRef] = reference<RefLabelResult[]>([{ ...files, op: 'dice' }, { ...files, op: 'hd95' }, { ...files, op: 'l2r_hd95' }, { ...files, op: 'voxel_boundary_hd95' }]);

  const d = dice(fixed, warped, labels);
  agreement[`${name} dice`] = maxLabelDiff(d.perLabel, dRef.perLabel);
  expect(agreement[`${name} dice`]).toBeLessThan(1e-4);
  expect(d.mean).toBeCloseTo(dRef.mean!, 10);

  const h = hd95(fixed, warped, dims, spacing, labels);
  agreement[`${name} hd95 (mm)`] = maxLabelDiff(h.perLabel, hRef.perLabel);
  expect(agreement[`${name} hd95 (mm)`]).toBeLessThan(1e-9); // exact EDT on both sides
  expect(h.mean).toBeCloseTo(hRef.mean!, 9);

  // l2r-hd95 against Learn2Reg's compute_hd95 over DeepMind surface-distance itself: the same numbers
  const l = l2rHd95(fixed, warped, dims, labels);
  agreement[`${name} l2r-hd95 (vox)`] = maxLabelDiff(l.perLabel, lRef.perLabel);
  expect(agreement[`${name} l2r-hd95 (vox)`]).toBe(0);
  expect(l.mean).toBeCloseTo(lRef.mean!, 12);
  const v = voxelBoundaryHd95(fixed, warped, dims, labels);
  agreement[`${name} voxel-boundary hd95 (vox)`] = maxLabelDiff(v.perLabel, vRef.perLabel);
  expect(agreement[`${name} voxel-boundary hd95 (vox)`]).toBeLessThan(1e-9);
  return { dice: d, hd95: h };
}

function crossCheckJacobian(name: string, field: Float32Array, dims: Vec3) {
  const det = jacobianDeterminant(field, dims);
  const ref = reference<RefJacobian>({ op: 'jacobian', dims, field: rawFile(field), compareDet: rawFile(det) });
  agreement[`${name} det J`] = ref.maxAbsDiff;
  expect(ref.maxAbsDiff).toBeLessThan(1e-4);
  expect(foldingPercent(det)).toBeCloseTo(ref.nonpositive_percent, 4);
  expect(foldingPercent(det, { strict: true })).toBeCloseTo(ref.negative_percent, 4);
  agreement[`${name} sdlogj`] = Math.abs(sdLogJacobian(det) - ref.sdlogj!);
  agreement[`${name} l2r-sdlogj`] = Math.abs(l2rSdLogJacobian(det, dims) - ref.l2r_sdlogj!);
  expect(agreement[`${name} sdlogj`]).toBeLessThan(1e-4);
  expect(agreement[`${name} l2r-sdlogj`]).toBeLessThan(1e-4);
  return { det, ref };
}

describe.skipIf(!hasPython)('cross-check against numpy/scipy: synthetic', () => {
  it('random blobs on an anisotropic grid, with an absent label', () => {
    const dims: Vec3 = [40, 36, 24];
    const a = ball(dims, [14, 15, 10], 9, 1), b = ball(dims, [18, 17, 11], 8, 1);
    const a2 = ball(dims, [28, 20, 12], 6, 2), b2 = ball(dims, [26, 21, 14], 7, 2);
    for (let q = 0; q < a.length; q++) { if (a2[q]) a[q] = 2; if (b2[q]) b[q] = 2; }
    crossCheckLabels('blobs', a, b, dims, [0.7, 1.3, 2.9], [1, 2, 3]);
  });

  it('a folding random field: det J, folding %, SDlogJ, l2r-SDlogJ', () => {
    const dims: Vec3 = [40, 36, 24];
    const field = randomField(dims, 2.5, 11);
    const { ref } = crossCheckJacobian('folding field', field, dims);
    expect(ref.nonpositive_percent).toBeGreaterThan(0); // the case is meant to fold
  });

  it('endpoint error against a true field, whole grid and inside a label mask, anisotropic spacing', () => {
    const dims: Vec3 = [40, 36, 24];
    const spacing = [0.7, 1.3, 2.9];
    const truth = randomField(dims, 2, 5);
    const predicted = randomField(dims, 2, 6);
    const mask = ball(dims, [20, 18, 12], 9, 3);
    const ref = reference<{ epe: number }[]>([
      { op: 'endpoint_error', dims, spacing, field: rawFile(predicted), truth: rawFile(truth) },
      { op: 'endpoint_error', dims, spacing, field: rawFile(predicted), truth: rawFile(truth), mask: rawFile(mask) },
    ]);
    const all = endpointError(predicted, truth, dims, spacing);
    const inside = endpointError(predicted, truth, dims, spacing, mask);
    agreement['endpoint error (mm)'] = Math.max(Math.abs(all - ref[0].epe), Math.abs(inside - ref[1].epe));
    expect(agreement['endpoint error (mm)']).toBeLessThan(1e-9);
    expect(all).toBeGreaterThan(0.1);
    expect(inside).not.toBe(all);
    expect(endpointError(truth, truth, dims, spacing)).toBe(0);
  });
});

describe.skipIf(!hasPython || !hasShared)('cross-check against numpy/scipy: real label maps', () => {
  it('brain aseg 160×192×224 (1 mm) vs a copy warped by a smooth random field, 30 evaluation labels', async () => {
    const aseg = await readLabelMap(shared('brain/vxm_subject_aseg.nii.gz'));
    const dims = aseg.dims;
    const field = randomField(dims, 1, 7);
    const warped = warpNearest(aseg.data, dims, field, dims);
    const r = crossCheckLabels('brain', aseg.data, warped, dims, aseg.spacing, ASEG_EVAL_LABELS);
    expect(r.dice.mean).toBeGreaterThan(0.5);
    expect(r.dice.mean).toBeLessThan(1);
    crossCheckJacobian('brain field', field, dims);
  }, REAL_DATA_TIMEOUT_MS);

  it('abdomen CT labels 122×101×30 at 3 mm, all labels present', async () => {
    const seg = await readLabelMap(shared('abdomen/example_seg.nii.gz'));
    expect(seg.spacing.map((s) => Math.round(s * 100) / 100)).toEqual([3, 3, 3]);
    const field = randomField(seg.dims, 0.8, 5);
    const warped = warpNearest(seg.data, seg.dims, field, seg.dims);
    crossCheckLabels('abdomen', seg.data, warped, seg.dims, seg.spacing, presentLabels(seg.data));
  }, REAL_DATA_TIMEOUT_MS);

  it('knee labels at 0.7 × 0.365 × 0.365 mm (anisotropic), central block', async () => {
    const knee = await readLabelMap(shared('knee-labels/OAI_ZIB-UQ_9001104_label.nii.gz'));
    const block = cropVolume(knee.data, knee.dims, [20, 100, 100], [144, 310, 280]);
    const field = randomField(block.dims, 1, 9);
    const warped = warpNearest(block.data, block.dims, field, block.dims);
    crossCheckLabels('knee', block.data, warped, block.dims, knee.spacing, [1, 2, 3, 4, 5, 6]);
  }, REAL_DATA_TIMEOUT_MS);
});
