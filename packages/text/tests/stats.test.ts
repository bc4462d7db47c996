/** Seeded bootstrap intervals and the paired randomisation test: coverage, determinism, p-value behaviour. */
import { describe, expect, it } from 'vitest';
import { bootstrapInterval, bootstrapMean, pairedRandomisationMean, pairedRandomisationTest, quantileSorted, seededRandom } from '../src/index.ts';

const normals = (seed: number, n: number, mean: number, sd: number) => {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => mean + sd * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
};

describe('bootstrap', () => {
  it('is reproducible for a seed and differs between seeds', () => {
    const v = normals(1, 50, 0.5, 0.2);
    expect(bootstrapMean(v, { seed: 3 })).toEqual(bootstrapMean(v, { seed: 3 }));
    expect(bootstrapMean(v, { seed: 3 }).lo).not.toBe(bootstrapMean(v, { seed: 4 }).lo);
  });

  it('a 95 % interval of a mean has the normal-theory width (±1.96 sd/√n) and covers the true mean about 95 % of the time', () => {
    const n = 100;
    let covered = 0;
    const trials = 60;
    for (let t = 0; t < trials; t++) {
      const v = normals(100 + t, n, 2, 1);
      const ci = bootstrapMean(v, { seed: t, resamples: 400 });
      if (ci.lo <= 2 && 2 <= ci.hi) covered++;
      if (t === 0) expect((ci.hi - ci.lo) / 2).toBeGreaterThan(0.8 * 1.96 / Math.sqrt(n));
      if (t === 0) expect((ci.hi - ci.lo) / 2).toBeLessThan(1.2 * 1.96 / Math.sqrt(n));
    }
    expect(covered / trials).toBeGreaterThan(0.85);
  });

  it('a constant statistic has a zero-width interval; NaN draws are left out', () => {
    const c = bootstrapInterval(10, () => 0.4, { resamples: 50 });
    expect([c.value, c.lo, c.hi]).toEqual([0.4, 0.4, 0.4]);
    const withNaN = bootstrapMean([1, NaN, 1, 1], { resamples: 50 });
    expect([withNaN.value, withNaN.lo, withNaN.hi]).toEqual([1, 1, 1]);
  });

  it('quantiles interpolate linearly (numpy default)', () => {
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantileSorted([1, 2, 3, 4], 0.025)).toBeCloseTo(1.075, 12);
  });
});

describe('paired randomisation test', () => {
  it('identical systems: difference 0 and p = 1', () => {
    const a = normals(5, 40, 0.3, 0.1);
    const r = pairedRandomisationMean(a, [...a], { trials: 500 });
    expect(r.difference).toBe(0);
    expect(r.pValue).toBe(1);
  });

  it('clearly different systems: p at its floor 1/(trials+1)', () => {
    const a = normals(6, 40, 0.6, 0.05);
    const b = normals(7, 40, 0.3, 0.05);
    const r = pairedRandomisationMean(a, b, { trials: 999 });
    expect(r.difference).toBeGreaterThan(0.25);
    expect(r.pValue).toBe(1 / 1000);
  });

  it('exchangeable systems: p is roughly uniform (about 5 % of tests below 0.05)', () => {
    let small = 0;
    const tests = 80;
    for (let t = 0; t < tests; t++) {
      const base = normals(1000 + t, 30, 0.5, 0.1);
      const a = base.map((x, i) => x + normals(2000 + t, 30, 0, 0.05)[i]);
      const b = base.map((x, i) => x + normals(3000 + t, 30, 0, 0.05)[i]);
      if (pairedRandomisationMean(a, b, { trials: 300, seed: t }).pValue < 0.05) small++;
    }
    expect(small / tests).toBeLessThan(0.15);
  });

  it('agrees with the exact permutation distribution on a small case', () => {
    // d = [1, 2, 3]: the 8 sign patterns give |mean| ≥ 2 for ++ + and −−− only: exact two-sided p = 2/8.
    const r = pairedRandomisationTest(3, (swap) => ([1, 2, 3].reduce((s, d, i) => s + (swap[i] ? -d : d), 0) / 3), { trials: 20000, seed: 1 });
    expect(r.pValue).toBeGreaterThan(0.23);
    expect(r.pValue).toBeLessThan(0.27);
  });

  it('needs paired samples', () => {
    expect(() => pairedRandomisationMean([1, 2], [1])).toThrow(/same samples/);
  });
});
