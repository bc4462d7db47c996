/**
 * The primitives the metrics call (the metrics themselves are in their plugin folders, with their tests,
 * and test/metrics holds the cross-checks of several at once): distance transforms and surfaces, the
 * percentiles, the surface elements of Learn2Reg's HD95, the Jacobian determinant.
 */
import { describe, expect, it } from 'vitest';
import {
  cellSurfaceAreas,
  distanceTransform,
  jacobianDeterminant,
  percentileSorted,
  robustPercentileSorted,
  squaredDistanceTransform,
  surfaceDistances,
  surfaceVoxels,
  type Vec3,
} from '../src/index.ts';
import { hasPython, runPython } from './helpers.ts';
import { ball, voxelIndex } from '../../../test/helpers/volumes.ts';

if (!hasPython) console.warn('[metrics tests] no venv python with numpy/scipy: the surface-distance table check is SKIPPED');

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
    features[voxelIndex(dims, 4, 3, 2)] = 1;
    const d2 = squaredDistanceTransform(features, dims, spacing);
    let worst = 0;
    for (let k = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++) {
      let best = Infinity;
      for (let c = 0; c < dims[2]; c++) for (let b = 0; b < dims[1]; b++) for (let a = 0; a < dims[0]; a++) {
        if (!features[voxelIndex(dims, a, b, c)]) continue;
        best = Math.min(best, ((i - a) * spacing[0]) ** 2 + ((j - b) * spacing[1]) ** 2 + ((k - c) * spacing[2]) ** 2);
      }
      worst = Math.max(worst, Math.abs(best - d2[voxelIndex(dims, i, j, k)]));
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
    for (let k = 1; k < 4; k++) for (let j = 1; j < 4; j++) for (let i = 1; i < 4; i++) cube[voxelIndex(dims, i, j, k)] = 1;
    const s = surfaceVoxels(cube, dims);
    expect(s.reduce((a, b) => a + b, 0)).toBe(26); // 3³ minus the centre
    expect(s[voxelIndex(dims, 2, 2, 2)]).toBe(0);
    const full = surfaceVoxels(new Uint8Array(27).fill(1), [3, 3, 3]);
    expect(full.reduce((a, b) => a + b, 0)).toBe(26); // only the centre is interior
  });
});

describe('percentiles and surface distances', () => {
  it('percentiles: numpy linear and the surface-distance library robust percentile', () => {
    const x = Float64Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(percentileSorted(x, 95)).toBeCloseTo(9.5, 12);
    expect(percentileSorted(Float64Array.from([2]), 95)).toBe(2);
    // (t+1)/n ≥ 0.95 first at t = 10 for n = 11 (10/11 = 0.909…)
    expect(robustPercentileSorted(x, 95)).toBe(10);
    expect(robustPercentileSorted(Float64Array.from(Array.from({ length: 20 }, (_, t) => t)), 95)).toBe(18);
  });

  it('surfaceDistances works on full-grid masks (crop is internal)', () => {
    const dims: Vec3 = [36, 30, 30];
    const { aToB, bToA } = surfaceDistances(ball(dims, [15, 15, 15], 10), ball(dims, [19, 15, 15], 10), dims);
    expect(aToB.length).toBeGreaterThan(100);
    expect(Math.max(...aToB)).toBeCloseTo(4, 6); // the far pole is exactly d away
    expect(Math.max(...bToA)).toBeCloseTo(4, 6);
  });
});

describe.skipIf(!hasPython)("Learn2Reg's surface elements (DeepMind surface-distance's table)", () => {
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
});

describe('Jacobian determinant: analytic cases', () => {
  const dims: Vec3 = [7, 6, 5];
  const n = 7 * 6 * 5;

  it('linear field u = A·x: det J = det(I + A) at every voxel, borders included; mm and voxel fields agree', () => {
    const A = [[0.1, 0.2, -0.05], [0.03, -0.2, 0.1], [0.05, 0.0, 0.3]];
    const spacing = [0.5, 2, 3];
    const u = new Float32Array(3 * n), uMm = new Float32Array(3 * n);
    for (let k = 0; k < 5; k++) for (let j = 0; j < 6; j++) for (let i = 0; i < 7; i++) {
      const p = voxelIndex(dims, i, j, k);
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
});
