/**
 * warpTrilinear against torch's grid_sample(align_corners=True, zeros padding) on the fixture shared
 * with pytest (tests/fixtures/warp-grid-sample.json, written by
 * bridge/python/tests/test_warp_grid_sample.py, which also checks that the stored output is what torch
 * computes from the stored inputs). The trainer warps with grid_sample and native inference with
 * warpTrilinear, so the two must agree: to 1e-5 absolute on source values in [0, 1] (float32 rounding;
 * warpTrilinear accumulates in float64 and stores float32).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { warpTrilinear } from '../src/index.ts';
import { repoRoot } from './helpers.ts';

const TOLERANCE = 1e-5;

interface WarpCase { name: string; srcDims: number[]; fieldDims: number[]; components: number; src: number[]; field: number[]; expected: number[] }
const fixture = JSON.parse(readFileSync(path.join(repoRoot, 'packages/imaging/tests/fixtures/warp-grid-sample.json'), 'utf8')) as { cases: WarpCase[] };

describe('warpTrilinear = torch grid_sample(align_corners=True)', () => {
  it('the fixture holds both cases', () => {
    expect(fixture.cases.map((c) => c.name)).toEqual(['same-grid', 'coarse-field, 2 components']);
  });

  for (const c of fixture.cases) {
    it(`${c.name}: src ${c.srcDims.join('×')}, field ${c.fieldDims.join('×')}, ${c.components} component(s)`, () => {
      const out = warpTrilinear(Float32Array.from(c.src), c.srcDims, Float32Array.from(c.field), c.fieldDims, c.components);
      expect(out.length).toBe(c.expected.length);
      let worst = 0, zeros = 0;
      for (let q = 0; q < out.length; q++) {
        worst = Math.max(worst, Math.abs(out[q] - c.expected[q]));
        if (c.expected[q] === 0) zeros++;
      }
      expect(worst).toBeLessThanOrEqual(TOLERANCE);
      // not a degenerate fixture: values vary, and most samples land inside the source
      expect(new Set(c.expected.map((v) => v.toFixed(3))).size).toBeGreaterThan(out.length / 4);
      expect(zeros).toBeLessThan(out.length / 2);
    });
  }

  it('disagrees with grid_sample when the coordinate convention is off by one voxel (the test can fail)', () => {
    const c = fixture.cases[0];
    const shifted = Float32Array.from(c.field, (u, q) => (q < c.field.length / 3 ? u + 1 : u));
    const out = warpTrilinear(Float32Array.from(c.src), c.srcDims, shifted, c.fieldDims, c.components);
    const worst = Math.max(...Array.from(out, (v, q) => Math.abs(v - c.expected[q])));
    expect(worst).toBeGreaterThan(100 * TOLERANCE);
  });
});
