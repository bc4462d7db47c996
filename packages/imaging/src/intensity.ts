/**
 * Intensity transforms for images (never for label maps). Each returns a new Float32 volume plus
 * the statistics it used, so a prepared dataset can record exactly what was done.
 *
 * NaN / ±Inf handling is uniform: a non-finite voxel is excluded from every statistic, replaced by
 * the operation's *low value* (given per function below), and counted in `nonFinite` — nothing throws,
 * nothing propagates NaN into a network input.
 *
 * The JSON form used by configs and manifests (`applyIntensityOps`):
 *
 *     [{"op":"percentile-clip","lower":0,"upper":95},
 *      {"op":"window","min":-180,"max":400},
 *      {"op":"minmax"},
 *      {"op":"zscore","mask":"nonzero"}]
 */
import { configError } from '@llmed/core/errors';
import { finiteStats, percentiles } from './stats.ts';
import { withData, type Volume } from './volume.ts';

/** Which voxels statistics are computed over: all finite voxels, or the finite nonzero ones. */
export type IntensityMask = 'all' | 'nonzero';

export type IntensityOp =
  | { op: 'percentile-clip'; lower: number; upper: number; mask?: IntensityMask }
  | { op: 'window'; min: number; max: number }
  | { op: 'minmax' }
  | { op: 'zscore'; mask?: IntensityMask };

/** Names of the known ops, for messages and docs. */
export const INTENSITY_OPS = ['percentile-clip', 'window', 'minmax', 'zscore'] as const;

export interface IntensityResult {
  volume: Volume<Float32Array>;
  /** Non-finite input voxels that were replaced by the low value. */
  nonFinite: number;
  /** The values the op computed or used (percentile bounds, min/max, mean/std ...). */
  stats: Record<string, number>;
}

function maskArray(data: ArrayLike<number>, mask: IntensityMask | undefined): Uint8Array | undefined {
  if (!mask || mask === 'all') return undefined;
  const m = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) m[i] = data[i] !== 0 && data[i] - data[i] === 0 ? 1 : 0;
  return m;
}

/** out[i] = clamp(data[i], lo, hi), non-finite -> lo. */
function clampInto(data: ArrayLike<number>, lo: number, hi: number): { out: Float32Array; nonFinite: number } {
  const out = new Float32Array(data.length);
  let nonFinite = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) {
      out[i] = lo;
      nonFinite++;
    } else out[i] = v < lo ? lo : v > hi ? hi : v;
  }
  return { out, nonFinite };
}

/**
 * Clip to the [lower, upper] percentiles (0..100, numpy linear interpolation) of the finite voxels
 * (or of the finite nonzero voxels with `mask: 'nonzero'`); the clip itself applies to every voxel,
 * background included (as nnU-Net clips CT). Low value: the lower percentile.
 */
export function percentileClip(vol: Volume, lower: number, upper: number, opts: { mask?: IntensityMask } = {}): IntensityResult {
  const m = maskArray(vol.data, opts.mask);
  // Bounds rounded to float32, the type of the output, so the recorded stats are the values used.
  const [lo, hi] = percentiles(vol.data, [lower, upper], m).map(Math.fround);
  if (Number.isNaN(lo)) {
    // No finite voxel to take percentiles of: everything becomes 0.
    const { out, nonFinite } = clampInto(vol.data, 0, 0);
    return { volume: withData(vol, out, { datatype: 'float32' }), nonFinite, stats: { low: 0, high: 0 } };
  }
  const { out, nonFinite } = clampInto(vol.data, lo, hi);
  return { volume: withData(vol, out, { datatype: 'float32' }), nonFinite, stats: { low: lo, high: hi } };
}

/** HU-style window: clip to [min, max] (e.g. -180..400 for abdominal CT). Low value: `min`. */
export function windowIntensity(vol: Volume, min: number, max: number): IntensityResult {
  const { out, nonFinite } = clampInto(vol.data, min, max);
  return { volume: withData(vol, out, { datatype: 'float32' }), nonFinite, stats: { min, max } };
}

/**
 * Min-max scaling of the finite voxels to [0, 1]: (v - min) / (max - min). A constant image becomes
 * all zeros. Low value: the finite minimum (so non-finite voxels end up at 0).
 */
export function minMaxNormalize(vol: Volume): IntensityResult {
  const { min, max } = finiteStats(vol.data);
  const n = vol.data.length;
  const out = new Float32Array(n);
  let nonFinite = 0;
  const range = max - min;
  const scale = range > 0 ? 1 / range : 0;
  const offset = Number.isFinite(min) ? min : 0;
  for (let i = 0; i < n; i++) {
    const v = vol.data[i];
    if (v - v !== 0) {
      out[i] = 0;
      nonFinite++;
    } else out[i] = (v - offset) * scale;
  }
  return { volume: withData(vol, out, { datatype: 'float32' }), nonFinite, stats: { min: Number.isFinite(min) ? min : 0, max: Number.isFinite(max) ? max : 0 } };
}

/**
 * Z-score: (v - mean) / std, with mean and std (population) over the finite voxels, or with
 * `mask: 'nonzero'` over the finite nonzero voxels — then voxels outside that mask are set to 0
 * (background stays background, as in nnU-Net's masked normalisation). std = 0 is treated as 1.
 * Low value: the z-score of the smallest finite voxel inside the mask.
 */
export function zScoreNormalize(vol: Volume, opts: { mask?: IntensityMask } = {}): IntensityResult {
  const m = maskArray(vol.data, opts.mask);
  const st = finiteStats(vol.data, m);
  const mean = st.count > 0 ? st.mean : 0;
  const std = st.count > 0 && st.std > 0 ? st.std : 1;
  const inv = 1 / std;
  const low = st.count > 0 ? (st.min - mean) * inv : 0;
  const n = vol.data.length;
  const out = new Float32Array(n);
  let nonFinite = 0;
  for (let i = 0; i < n; i++) {
    const v = vol.data[i];
    if (v - v !== 0) {
      out[i] = low;
      nonFinite++;
    } else if (m && !m[i]) out[i] = 0;
    else out[i] = (v - mean) * inv;
  }
  return { volume: withData(vol, out, { datatype: 'float32' }), nonFinite, stats: { mean, std, count: st.count } };
}

function num(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

/**
 * Check a JSON list of intensity ops; returns it typed. Errors are `configError` naming the entry
 * (`<where>[i]`) — an unknown op lists the known ones.
 */
export function validateIntensityOps(ops: unknown, where = 'intensity ops'): IntensityOp[] {
  if (!Array.isArray(ops)) throw configError(where, `must be a JSON array of ops like [{"op":"minmax"}], got ${typeof ops}`);
  return ops.map((raw, i) => {
    const at = `${where}[${i}]`;
    if (typeof raw !== 'object' || raw === null || typeof (raw as { op?: unknown }).op !== 'string') {
      throw configError(at, `each op must be an object with an "op" name; known ops: ${INTENSITY_OPS.join(', ')}`);
    }
    const o = raw as Record<string, unknown>;
    const allow = (keys: string[]) => {
      for (const k of Object.keys(o)) if (k !== 'op' && !keys.includes(k)) throw configError(at, `unknown field "${k}" for op '${String(o.op)}' (allowed: ${keys.join(', ') || 'none'})`);
    };
    const maskOk = (m: unknown) => m === undefined || m === 'all' || m === 'nonzero';
    switch (o.op) {
      case 'percentile-clip':
        allow(['lower', 'upper', 'mask']);
        if (!num(o.lower) || !num(o.upper) || o.lower < 0 || o.upper > 100 || o.lower > o.upper) {
          throw configError(at, `percentile-clip needs 0 <= lower <= upper <= 100, got lower=${String(o.lower)} upper=${String(o.upper)}`);
        }
        if (!maskOk(o.mask)) throw configError(at, `mask must be "all" or "nonzero", got ${JSON.stringify(o.mask)}`);
        return { op: 'percentile-clip', lower: o.lower, upper: o.upper, ...(o.mask ? { mask: o.mask as IntensityMask } : {}) };
      case 'window':
        allow(['min', 'max']);
        if (!num(o.min) || !num(o.max) || o.min >= o.max) throw configError(at, `window needs numbers min < max, got min=${String(o.min)} max=${String(o.max)}`);
        return { op: 'window', min: o.min, max: o.max };
      case 'minmax':
        allow([]);
        return { op: 'minmax' };
      case 'zscore':
        allow(['mask']);
        if (!maskOk(o.mask)) throw configError(at, `mask must be "all" or "nonzero", got ${JSON.stringify(o.mask)}`);
        return { op: 'zscore', ...(o.mask ? { mask: o.mask as IntensityMask } : {}) };
      default:
        throw configError(at, `unknown intensity op '${String(o.op)}'; known ops: ${INTENSITY_OPS.join(', ')}`);
    }
  });
}

/** Apply one validated op. */
export function applyIntensityOp(vol: Volume, op: IntensityOp): IntensityResult {
  switch (op.op) {
    case 'percentile-clip':
      return percentileClip(vol, op.lower, op.upper, { mask: op.mask });
    case 'window':
      return windowIntensity(vol, op.min, op.max);
    case 'minmax':
      return minMaxNormalize(vol);
    case 'zscore':
      return zScoreNormalize(vol, { mask: op.mask });
  }
}

/**
 * Validate then apply a JSON list of ops in order. `nonFinite` is the number of non-finite input
 * voxels (replaced by the first op); `steps` records each op with the statistics it used.
 */
export function applyIntensityOps(
  vol: Volume,
  ops: unknown,
  where = 'intensity ops',
): { volume: Volume<Float32Array>; nonFinite: number; steps: Array<IntensityOp & { stats: Record<string, number> }> } {
  const valid = validateIntensityOps(ops, where);
  let cur: Volume = vol;
  let nonFinite = 0;
  const steps: Array<IntensityOp & { stats: Record<string, number> }> = [];
  for (const op of valid) {
    const r = applyIntensityOp(cur, op);
    nonFinite += r.nonFinite;
    steps.push({ ...op, stats: r.stats });
    cur = r.volume;
  }
  const volume: Volume<Float32Array> = cur.data instanceof Float32Array && cur !== vol ? (cur as Volume<Float32Array>) : withData(vol, Float32Array.from(vol.data), { datatype: 'float32' });
  return { volume, nonFinite, steps };
}
