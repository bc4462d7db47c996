/** hd95: analytic cases (exact answers by construction); cases.json holds the ones checked in both languages. */
import { describe, expect, it } from 'vitest';
import type { Vec3 } from '@llmed/imaging';
import { hd95 } from '../src/index.ts';

const idx = (dims: readonly number[], i: number, j: number, k: number) => i + dims[0] * (j + dims[1] * k);

/** Binary ball of radius r (voxels) centred at c. */
function ball(dims: Vec3, c: readonly number[], r: number, value = 1): Int32Array {
  const out = new Int32Array(dims[0] * dims[1] * dims[2]);
  for (let k = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++) {
    if ((i - c[0]) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2 <= r * r) out[idx(dims, i, j, k)] = value;
  }
  return out;
}

describe('HD95: analytic cases', () => {
  it('two parallel planes d voxels apart along an anisotropic axis: HD95 = d·spacing exactly', () => {
    const dims: Vec3 = [6, 5, 12];
    const a = new Int32Array(6 * 5 * 12), b = new Int32Array(6 * 5 * 12);
    for (let j = 0; j < 5; j++) for (let i = 0; i < 6; i++) { a[idx(dims, i, j, 3)] = 1; b[idx(dims, i, j, 7)] = 1; }
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
