/**
 * l2r-hd95 is Learn2Reg's formula: analytic cases, and checks against DeepMind's surface-distance package
 * itself (the plugin's Python reference, python/llmed_l2r_hd95).
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Vec3 } from '@llmed/imaging';
import { hasPython, MetricReference } from '../../../test/helpers/metric-reference.ts';
import { descriptor, l2rHd95, voxelBoundaryHd95 } from '../src/index.ts';
import { ball, voxelIndex } from '../../../test/helpers/volumes.ts';

it('two parallel planes d voxels apart: l2r-hd95 = d voxels, whatever the spacing', () => {
  const dims: Vec3 = [6, 5, 12];
  const a = new Int32Array(6 * 5 * 12), b = new Int32Array(6 * 5 * 12);
  for (let j = 0; j < 5; j++) for (let i = 0; i < 6; i++) { a[voxelIndex(dims, i, j, 3)] = 1; b[voxelIndex(dims, i, j, 7)] = 1; }
  expect(l2rHd95(a, b, dims, [1]).perLabel['1']).toBe(4);
});

describe.skipIf(!hasPython)("l2r-hd95 is Learn2Reg's formula (DeepMind surface-distance, area-weighted corner surfels)", () => {
  const ref = new MetricReference();
  afterAll(() => ref.cleanup());

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
    const [answer] = ref.run([{ plugin: descriptor, options: { labels: [1] }, inputs: { dims, fixedLabels: fixed, warpedLabels: new Int32Array(fixed.length), movingLabels: both } }]);
    expect(answer['perLabel.1']).toBe(Infinity);
  });

  it('differs from the voxel-boundary variant: offset spheres', () => {
    const dims: Vec3 = [36, 30, 30];
    const a = ball(dims, [15, 15, 15], 10);
    const shifted = [[17.5, 15.5, 15, 8], [19, 15.5, 15, 9], [16.3, 14.2, 15.7, 6.5]].map(([x, y, z, r]) => ball(dims, [x, y, z], r));
    const official = shifted.map((b) => l2rHd95(a, b, dims, [1]).perLabel['1']);
    const refs = ref.run(shifted.map((b) => ({ plugin: descriptor, options: { labels: [1] }, inputs: { dims, fixedLabels: a, warpedLabels: b } })));
    expect(official).toEqual(refs.map((r) => r['perLabel.1']));
    const boundary = shifted.map((b) => voxelBoundaryHd95(a, b, dims, [1]).perLabel['1']);
    expect(boundary.some((v, t) => v !== official[t]), `official ${official}, voxel boundary ${boundary}`).toBe(true);
  });
});
