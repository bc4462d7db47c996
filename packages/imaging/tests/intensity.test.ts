import { describe, expect, it } from 'vitest';
import {
  applyIntensityOps,
  finiteStats,
  makeVolume,
  minMaxNormalize,
  percentileClip,
  percentiles,
  percentilesInPlace,
  readNifti,
  windowIntensity,
  zScoreNormalize,
} from '../src/index.ts';
import { expectLlmedError, hasMricron, hasPython, hasShared, mricron, runPython, shared } from './helpers.ts';

/** numpy's default percentile by sorting (reference). */
function sortPercentile(values: number[], p: number): number {
  const a = values.filter(Number.isFinite).sort((x, y) => x - y);
  const pos = (p / 100) * (a.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, a.length - 1);
  return a[lo] + (a[hi] - a[lo]) * (pos - lo);
}

describe('percentiles (selection, numpy linear interpolation)', () => {
  it('equal a sort-based reference on random data with many ties', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (const n of [1, 2, 10, 1001, 20000]) {
      const vals = Array.from({ length: n }, () => (rnd() < 0.3 ? 0 : Math.round(rnd() * 50)));
      const ps = [0, 1, 2.5, 50, 95, 99, 100];
      const got = percentiles(Float32Array.from(vals), ps);
      ps.forEach((p, i) => expect(got[i]).toBeCloseTo(sortPercentile(vals, p), 4));
    }
  });

  it('selection (float data) and histogram (integer data) paths agree with the reference', () => {
    let seed = 11;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const floats = Array.from({ length: 5001 }, () => (rnd() < 0.2 ? 0 : rnd() * 1000 - 200));
    const ints = floats.map(Math.round);
    const ps = [0, 0.5, 1, 33.3, 50, 99, 99.5, 100];
    const gf = percentiles(Float32Array.from(floats), ps);
    const gi = percentiles(Float32Array.from(ints), ps);
    const gsel = percentilesInPlace(Float32Array.from(ints), ps);
    const f32 = Array.from(Float32Array.from(floats));
    ps.forEach((p, i) => {
      expect(gf[i]).toBeCloseTo(sortPercentile(f32, p), 3);
      expect(gi[i]).toBeCloseTo(sortPercentile(ints, p), 6);
      expect(gsel[i]).toBeCloseTo(gi[i], 6);
    });
    // with a mask
    const mask = Uint8Array.from(ints, (v) => (v > 100 ? 1 : 0));
    expect(percentiles(Float32Array.from(ints), [50], mask)[0]).toBeCloseTo(sortPercentile(ints.filter((v) => v > 100), 50), 6);
  });

  it('ignore NaN / Inf and return NaN for no finite values', () => {
    expect(percentiles([NaN, 1, Infinity, 3, -Infinity], [0, 50, 100])).toEqual([1, 2, 3]);
    expect(percentiles([NaN], [50])).toEqual([NaN]);
  });
});

describe('intensity transforms, NaN/Inf-safe', () => {
  const base = new Float32Array([NaN, -5, 0, 1, 2, 3, 4, 100, Infinity, -Infinity, 0, 7]);
  const vol = makeVolume(base, [3, 2, 2]);

  it('percentile clip: bounds from finite voxels, non-finite -> the lower bound', () => {
    const r = percentileClip(vol, 10, 90);
    expect(r.nonFinite).toBe(3);
    const finite = [...base].filter(Number.isFinite);
    expect(r.stats.low).toBeCloseTo(sortPercentile(finite, 10), 5);
    expect(r.stats.high).toBeCloseTo(sortPercentile(finite, 90), 5);
    for (const x of r.volume.data) {
      expect(Number.isFinite(x)).toBe(true);
      expect(x).toBeGreaterThanOrEqual(r.stats.low);
      expect(x).toBeLessThanOrEqual(r.stats.high);
    }
    expect(r.volume.data[0]).toBe(r.stats.low);
  });

  it('window clips to [min, max], non-finite -> min', () => {
    const r = windowIntensity(vol, -2, 5);
    expect(Array.from(r.volume.data)).toEqual([-2, -2, 0, 1, 2, 3, 4, 5, -2, -2, 0, 5]);
    expect(r.nonFinite).toBe(3);
  });

  it('min-max maps finite values onto [0, 1], non-finite -> 0; constant image -> 0', () => {
    const r = minMaxNormalize(vol);
    expect(r.volume.data[1]).toBe(0);
    expect(r.volume.data[7]).toBe(1);
    expect(r.volume.data[0]).toBe(0);
    expect(r.nonFinite).toBe(3);
    const c = minMaxNormalize(makeVolume(new Float32Array(8).fill(3), [2, 2, 2]));
    expect(Array.from(c.volume.data)).toEqual(new Array(8).fill(0));
  });

  it('z-score over all finite voxels: mean 0, std 1; non-finite -> z of the minimum', () => {
    const r = zScoreNormalize(vol);
    const st = finiteStats(r.volume.data.filter((_, i) => Number.isFinite(base[i])));
    expect(st.mean).toBeCloseTo(0, 5);
    expect(st.std).toBeCloseTo(1, 5);
    expect(r.volume.data[0]).toBeCloseTo(r.volume.data[1], 6);
  });

  it('z-score over the nonzero mask: background stays 0, foreground standardised', () => {
    const r = zScoreNormalize(vol, { mask: 'nonzero' });
    expect(r.volume.data[2]).toBe(0);
    expect(r.volume.data[10]).toBe(0);
    const fg = [1, 3, 4, 5, 6, 7, 11].map((i) => r.volume.data[i]);
    const st = finiteStats(fg);
    expect(st.mean).toBeCloseTo(0, 5);
    expect(st.std).toBeCloseTo(1, 5);
  });

  it('applyIntensityOps runs the JSON chain and records each step', () => {
    const ops = [
      { op: 'percentile-clip', lower: 0, upper: 95 },
      { op: 'window', min: -180, max: 400 },
      { op: 'minmax' },
      { op: 'zscore', mask: 'nonzero' },
    ];
    const r = applyIntensityOps(vol, JSON.parse(JSON.stringify(ops)));
    expect(r.steps.map((s) => s.op)).toEqual(['percentile-clip', 'window', 'minmax', 'zscore']);
    expect(r.nonFinite).toBe(3);
    expect(r.volume.data.every(Number.isFinite)).toBe(true);
    expect(r.steps[0].stats.high).toBeGreaterThan(7);
  });

  it('unknown op -> config error naming it and listing the known ones', async () => {
    await expectLlmedError(() => applyIntensityOps(vol, [{ op: 'minmax' }, { op: 'histeq' }], 'data.preprocess.moving'), 'config', [
      'data.preprocess.moving[1]',
      /unknown intensity op 'histeq'/,
      /percentile-clip, window, minmax, zscore/,
    ]);
    await expectLlmedError(() => applyIntensityOps(vol, [{ op: 'window', min: 5, max: 1 }]), 'config', [/min < max/]);
    await expectLlmedError(() => applyIntensityOps(vol, [{ op: 'percentile-clip', lower: 1, upper: 101 }]), 'config', [/upper <= 100/]);
    await expectLlmedError(() => applyIntensityOps(vol, [{ op: 'minmax', scale: 2 }]), 'config', [/unknown field "scale"/]);
    await expectLlmedError(() => applyIntensityOps(vol, { op: 'minmax' }), 'config', [/JSON array/]);
  });
});

describe.skipIf(!hasShared)('intensity on real CT (Hounsfield units)', () => {
  it('window -180..400 then min-max gives [0, 1] with air at 0', async () => {
    const ct = await readNifti(shared('abdomen/example_ct_sm.nii.gz'));
    const r = applyIntensityOps(ct, [{ op: 'window', min: -180, max: 400 }, { op: 'minmax' }]);
    const st = finiteStats(r.volume.data);
    expect(st.min).toBe(0);
    expect(st.max).toBe(1);
    expect(r.volume.data[0]).toBe(0); // corner voxel is air (< -180 HU)
  });
});

describe.skipIf(!hasMricron || !hasPython)('percentiles on a real volume match numpy', () => {
  it('ch2: p0.5, p1, p50, p99, p99.5 equal numpy.percentile', async () => {
    const v = await readNifti(mricron('ch2.nii.gz'));
    const ps = [0.5, 1, 50, 99, 99.5];
    const t0 = performance.now();
    const ours = percentiles(v.data, ps);
    expect(performance.now() - t0).toBeLessThan(1500);
    const ref = runPython<number[]>(
      `import nibabel as nib, numpy as np, json, sys
d = np.asarray(nib.load(sys.argv[1]).dataobj).astype(np.float64)
print(json.dumps(np.percentile(d, [0.5, 1, 50, 99, 99.5]).tolist()))`,
      [mricron('ch2.nii.gz')],
    );
    ps.forEach((_, i) => expect(ours[i]).toBeCloseTo(ref[i], 4));
  });
});
