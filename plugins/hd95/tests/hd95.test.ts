/** hd95: analytic cases (exact answers by construction); cases.json holds the ones checked in both languages. */
import { describe, expect, it } from 'vitest';
import type { Vec3 } from '@llmed/imaging';
import { hd95 } from '../src/index.ts';
import { ball, voxelIndex } from '../../../test/helpers/volumes.ts';

describe('HD95: analytic cases', () => {
  it('two parallel planes d voxels apart along an anisotropic axis: HD95 = d·spacing exactly', () => {
    const dims: Vec3 = [6, 5, 12];
    const a = new Int32Array(6 * 5 * 12), b = new Int32Array(6 * 5 * 12);
    for (let j = 0; j < 5; j++) for (let i = 0; i < 6; i++) { a[voxelIndex(dims, i, j, 3)] = 1; b[voxelIndex(dims, i, j, 7)] = 1; }
    expect(hd95(a, b, dims, [0.8, 0.8, 3], [1]).perLabel['1']).toBeCloseTo(4 * 3, 12);
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
});
