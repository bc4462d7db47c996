/**
 * Order statistics and moments on voxel arrays without sorting: numpy-compatible percentiles by an
 * exact histogram (integer-valued data) or by Floyd–Rivest selection on a copy of the finite values,
 * O(n) either way; min/max/mean/std in one pass.
 */

/** Swap two elements of a typed array. */
function swap(a: Float32Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}

/**
 * Rearrange `a[left..right]` so that `a[k]` is the value it would have if that range were sorted,
 * with smaller-or-equal values before it and greater-or-equal after (Floyd–Rivest selection;
 * copes with many equal values, which images have plenty of).
 */
export function selectKth(a: Float32Array, k: number, left = 0, right = a.length - 1): void {
  while (right > left) {
    if (right - left > 600) {
      // Narrow the range using a sample, as Floyd & Rivest (1975) do.
      const n = right - left + 1;
      const m = k - left + 1;
      const z = Math.log(n);
      const s = 0.5 * Math.exp((2 * z) / 3);
      const sd = 0.5 * Math.sqrt((z * s * (n - s)) / n) * (m - n / 2 < 0 ? -1 : 1);
      const newLeft = Math.max(left, Math.floor(k - (m * s) / n + sd));
      const newRight = Math.min(right, Math.floor(k + ((n - m) * s) / n + sd));
      selectKth(a, k, newLeft, newRight);
    }
    const t = a[k];
    let i = left;
    let j = right;
    swap(a, left, k);
    if (a[right] > t) swap(a, left, right);
    while (i < j) {
      swap(a, i, j);
      i++;
      j--;
      while (a[i] < t) i++;
      while (a[j] > t) j--;
    }
    if (a[left] === t) swap(a, left, j);
    else {
      j++;
      swap(a, j, right);
    }
    if (j <= k) left = j + 1;
    if (k <= j) right = j - 1;
  }
}

/** Copy of the finite values of `data` (optionally only where `mask[i]` is truthy). */
export function finiteValues(data: ArrayLike<number>, mask?: ArrayLike<number | boolean>): Float32Array {
  let n = 0;
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v === 0 && (!mask || mask[i])) out[n++] = v;
  }
  return out.subarray(0, n);
}

/**
 * Percentiles (0..100) of `values`, with numpy's default linear interpolation between order
 * statistics: for p, index = p/100·(n-1), result = a[lo] + (a[lo+1]-a[lo])·frac. Reorders `values`
 * in place (pass a copy). Returns NaN for every p when `values` is empty.
 */
export function percentilesInPlace(values: Float32Array, ps: readonly number[]): number[] {
  const n = values.length;
  if (n === 0) return ps.map(() => NaN);
  const order = ps.map((p, idx) => ({ p, idx })).sort((x, y) => x.p - y.p);
  const out = new Array<number>(ps.length);
  let left = 0;
  for (const { p, idx } of order) {
    if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`);
    const pos = (p / 100) * (n - 1);
    const lo = Math.floor(pos);
    const frac = pos - lo;
    // Ranks below `left` are already smaller than everything to their right.
    selectKth(values, lo, Math.min(left, lo), n - 1);
    const vLo = values[lo];
    let v = vLo;
    if (frac > 0 && lo + 1 < n) {
      // The next order statistic is the minimum of the part to the right of lo.
      let vHi = Infinity;
      for (let i = lo + 1; i < n; i++) if (values[i] < vHi) vHi = values[i];
      v = vLo + (vHi - vLo) * frac;
    }
    out[idx] = v;
    left = lo;
  }
  return out;
}

/**
 * Percentiles from a histogram, for integer-valued data: order statistic r is the smallest value whose
 * cumulative count exceeds r. Exact, and one pass over the voxels instead of a selection.
 */
function histogramPercentiles(data: ArrayLike<number>, ps: readonly number[], min: number, max: number, count: number, mask?: ArrayLike<number | boolean>): number[] {
  const hist = new Float64Array(max - min + 1);
  if (mask) {
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v - v === 0 && mask[i]) hist[v - min]++;
    }
  } else {
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v - v === 0) hist[v - min]++;
    }
  }
  // cumulative counts, then binary search for each rank
  for (let b = 1; b < hist.length; b++) hist[b] += hist[b - 1];
  const rankValue = (r: number) => {
    let lo = 0;
    let hi = hist.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (hist[mid] > r) hi = mid;
      else lo = mid + 1;
    }
    return lo + min;
  };
  return ps.map((p) => {
    if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`);
    const pos = (p / 100) * (count - 1);
    const lo = Math.floor(pos);
    const frac = pos - lo;
    const a = rankValue(lo);
    return frac > 0 && lo + 1 < count ? a + (rankValue(lo + 1) - a) * frac : a;
  });
}

/**
 * Percentiles (0..100) of the finite values of `data` (optionally where `mask` is truthy), with
 * numpy's default linear interpolation; `data` is not modified. Integer-valued data with a modest
 * range (uint8/int16 scans, label maps) goes through an exact histogram; anything else through
 * selection on a copy. Returns NaN for every p when there is no finite value.
 */
export function percentiles(data: ArrayLike<number>, ps: readonly number[], mask?: ArrayLike<number | boolean>): number[] {
  let min = Infinity;
  let max = -Infinity;
  let count = 0;
  let integer = true;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0 || (mask && !mask[i])) continue;
    if (v < min) min = v;
    if (v > max) max = v;
    if (integer && Math.floor(v) !== v) integer = false;
    count++;
  }
  if (count === 0) return ps.map(() => NaN);
  if (integer && max - min < 1 << 22) return histogramPercentiles(data, ps, min, max, count, mask);
  return percentilesInPlace(finiteValues(data, mask), ps);
}

/** Min, max, mean and standard deviation (population) of the finite values, and their count. */
export function finiteStats(data: ArrayLike<number>, mask?: ArrayLike<number | boolean>): { min: number; max: number; mean: number; std: number; count: number } {
  // One pass. Sums are taken of (v - shift), shift being the first value used, so the variance
  // formula E[x²] - E[x]² does not cancel catastrophically when the mean is large vs the spread.
  let min = Infinity;
  let max = -Infinity;
  let s1 = 0;
  let s2 = 0;
  let count = 0;
  let shift = NaN;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0 || (mask && !mask[i])) continue;
    if (count === 0) shift = v;
    if (v < min) min = v;
    if (v > max) max = v;
    const d = v - shift;
    s1 += d;
    s2 += d * d;
    count++;
  }
  if (count === 0) return { min: NaN, max: NaN, mean: NaN, std: NaN, count: 0 };
  const m1 = s1 / count;
  const variance = Math.max(0, s2 / count - m1 * m1);
  return { min, max, mean: shift + m1, std: Math.sqrt(variance), count };
}
