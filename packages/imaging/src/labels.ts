/**
 * Label maps: integer-valued volumes of structure ids (FreeSurfer aseg, organ masks, knee labels).
 *
 * Label maps are held as Int32Array volumes. Anything that is not integer-valued (an intensity image
 * passed where labels belong, a label map resampled with trilinear interpolation) is refused with a
 * `dataError` naming the file and the first offending voxel.
 */
import { dataError } from '@llmed/core/errors';
import { readNifti, type NiftiHeaderInfo } from './nifti.ts';
import { isIntegerArray, voxelCount, withData, type Volume } from './volume.ts';

/**
 * FreeSurfer aseg left/right structure pairs [left, right]: cerebral white matter 2/41, cortex 3/42,
 * lateral ventricle 4/43, inferior lateral ventricle 5/44, cerebellum white matter 7/46, cerebellum
 * cortex 8/47, thalamus 10/49, caudate 11/50, putamen 12/51, pallidum 13/52, hippocampus 17/53,
 * amygdala 18/54, accumbens 26/58, ventral DC 28/60, vessel 30/62, choroid plexus 31/63.
 */
export const FREESURFER_LEFT_RIGHT_PAIRS: ReadonlyArray<readonly [number, number]> = Object.freeze([
  [2, 41], [3, 42], [4, 43], [5, 44], [7, 46], [8, 47], [10, 49], [11, 50],
  [12, 51], [13, 52], [17, 53], [18, 54], [26, 58], [28, 60], [30, 62], [31, 63],
] as const);

/**
 * Throw `dataError(file, ...)` unless every value of `vol` is a finite integer within int32 range.
 * Integer typed arrays pass at once (uint32 values above 2^31-1 excepted).
 */
export function assertIntegerLabels(vol: Volume, file: string): void {
  const d = vol.data;
  if (isIntegerArray(d) && !(d instanceof Uint32Array)) return;
  let bad = 0;
  let first = -1;
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
      if (first < 0) first = i;
      bad++;
    }
  }
  if (bad > 0) {
    const nvox = voxelCount(vol);
    const c = Math.floor(first / nvox);
    const r = first % nvox;
    const i = r % vol.dims[0];
    const j = Math.floor(r / vol.dims[0]) % vol.dims[1];
    const k = Math.floor(r / (vol.dims[0] * vol.dims[1]));
    const where = vol.components > 1 ? `(${i}, ${j}, ${k}) component ${c}` : `(${i}, ${j}, ${k})`;
    throw dataError(
      file,
      `label map is not integer-valued: voxel ${where} = ${d[first]}; ${bad} of ${d.length} values are not integers in int32 range`,
      'pass a label map (segmentation), not an intensity image; resample labels with nearest neighbour',
    );
  }
}

/** Integer label map as an Int32Array volume (checked with `assertIntegerLabels`). */
export function toLabelMap(vol: Volume, file: string): Volume<Int32Array> {
  assertIntegerLabels(vol, file);
  let data: Int32Array;
  if (vol.data instanceof Int32Array) data = vol.data;
  else {
    data = new Int32Array(vol.data.length);
    data.set(vol.data); // values were just checked to be int32 integers: exact
  }
  return withData(vol, data);
}

/** Read a NIfTI label map as Int32 labels; non-integer content is a `dataError` naming the file. */
export async function readLabelMap(file: string): Promise<Volume<Int32Array> & { file: string; header: NiftiHeaderInfo }> {
  const vol = await readNifti(file);
  const labels = toLabelMap(vol, file);
  return { ...labels, file, header: vol.header };
}

/** Sorted distinct values of a volume (for label maps: the labels present, background included). */
export function uniqueLabels(vol: Volume | { data: ArrayLike<number> }): number[] {
  const d = vol.data;
  if (d.length === 0) return [];
  let min = Infinity;
  let max = -Infinity;
  let integer = true;
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    if (v < min) min = v;
    if (v > max) max = v;
    if (integer && !Number.isInteger(v)) integer = false;
  }
  if (integer && max - min < 1 << 24) {
    // Presence table: one pass, no hashing.
    const seen = new Uint8Array(max - min + 1);
    for (let i = 0; i < d.length; i++) seen[d[i] - min] = 1;
    const out: number[] = [];
    for (let v = 0; v < seen.length; v++) if (seen[v]) out.push(v + min);
    return out;
  }
  const set = new Set<number>();
  for (let i = 0; i < d.length; i++) set.add(d[i]);
  return [...set].sort((a, b) => a - b);
}

/** Voxel count per label value. */
export function labelCounts(vol: Volume | { data: ArrayLike<number> }): Map<number, number> {
  const d = vol.data;
  const m = new Map<number, number>();
  const labels = uniqueLabels({ data: d });
  if (labels.length > 0 && labels.every(Number.isInteger) && labels[labels.length - 1] - labels[0] < 1 << 24) {
    // Histogram over the value range: one pass, no hashing.
    const min = labels[0];
    const hist = new Float64Array(labels[labels.length - 1] - min + 1);
    for (let i = 0; i < d.length; i++) hist[d[i] - min]++;
    for (const l of labels) m.set(l, hist[l - min]);
    return m;
  }
  for (let i = 0; i < d.length; i++) m.set(d[i], (m.get(d[i]) ?? 0) + 1);
  return m;
}

export type LabelTable = ReadonlyMap<number, number> | Readonly<Record<string | number, number>>;

function tableEntries(table: LabelTable): Array<[number, number]> {
  const entries: Array<[number, number]> = table instanceof Map ? [...table.entries()] : Object.entries(table).map(([k, v]) => [Number(k), v as number]);
  for (const [k, v] of entries) {
    if (!Number.isInteger(k) || !Number.isInteger(v)) throw dataError('relabel', `label table entries must map integers to integers, got ${k} -> ${v}`);
  }
  return entries;
}

/**
 * Map label values through `table` (old -> new). Values not in the table become 0 with
 * `unmapped: 'zero'` (default: keep only the listed structures, e.g. an evaluation subset) or stay as
 * they are with `unmapped: 'keep'`. Returns an Int32 label volume.
 */
export function relabel(vol: Volume, table: LabelTable, opts: { unmapped?: 'zero' | 'keep'; file?: string } = {}): Volume<Int32Array> {
  const labels = toLabelMap(vol, opts.file ?? 'relabel input');
  const keep = (opts.unmapped ?? 'zero') === 'keep';
  const entries = tableEntries(table);
  const src = labels.data;
  const out = new Int32Array(src.length);
  let min = 0;
  let max = 0;
  for (let i = 0; i < src.length; i++) {
    if (src[i] < min) min = src[i];
    if (src[i] > max) max = src[i];
  }
  if (max - min < 1 << 24) {
    // Lookup table over the value range.
    const lut = new Int32Array(max - min + 1);
    for (let v = min; v <= max; v++) lut[v - min] = keep ? v : 0;
    for (const [k, v] of entries) if (k >= min && k <= max) lut[k - min] = v;
    for (let i = 0; i < src.length; i++) out[i] = lut[src[i] - min];
  } else {
    const map = new Map(entries);
    for (let i = 0; i < src.length; i++) {
      const v = map.get(src[i]);
      out[i] = v !== undefined ? v : keep ? src[i] : 0;
    }
  }
  return withData(labels, out, { datatype: 'int32' });
}

/**
 * Merge left and right hemisphere structures: every right id is replaced by its left id
 * (41 -> 2, 42 -> 3, ...); all other labels are kept. Default pairs: `FREESURFER_LEFT_RIGHT_PAIRS`.
 */
export function mergeLeftRight(
  vol: Volume,
  pairs: ReadonlyArray<readonly [number, number]> = FREESURFER_LEFT_RIGHT_PAIRS,
  opts: { file?: string } = {},
): Volume<Int32Array> {
  const table = new Map<number, number>();
  for (const [left, right] of pairs) table.set(right, left);
  return relabel(vol, table, { unmapped: 'keep', file: opts.file });
}

/**
 * One-hot encoding: a Float32 volume with `labels.length` components, channel c being 1 where the
 * label map equals `labels[c]` and 0 elsewhere (values not listed are 0 in every channel).
 */
export function oneHot(vol: Volume, labels: readonly number[]): Volume<Float32Array> {
  if (vol.components !== 1) throw dataError('oneHot', `expects a single-component label map, got ${vol.components} components`);
  if (labels.length === 0) throw dataError('oneHot', 'needs at least one label');
  const nvox = voxelCount(vol);
  const out = new Float32Array(nvox * labels.length);
  const channel = new Map<number, number>();
  labels.forEach((l, c) => {
    if (channel.has(l)) throw dataError('oneHot', `label ${l} is listed twice`);
    channel.set(l, c);
  });
  const d = vol.data;
  const lmin = Math.min(...labels);
  const lmax = Math.max(...labels);
  if (labels.every(Number.isInteger) && lmax - lmin < 1 << 20) {
    // Lookup table value -> channel (-1 = none): no hashing in the voxel loop.
    const lut = new Int32Array(lmax - lmin + 1).fill(-1);
    labels.forEach((l, c) => (lut[l - lmin] = c));
    for (let i = 0; i < nvox; i++) {
      const v = d[i];
      if (v >= lmin && v <= lmax && Number.isInteger(v)) {
        const c = lut[v - lmin];
        if (c >= 0) out[c * nvox + i] = 1;
      }
    }
  } else {
    for (let i = 0; i < nvox; i++) {
      const c = channel.get(d[i]);
      if (c !== undefined) out[c * nvox + i] = 1;
    }
  }
  const res = withData(vol, out, { components: labels.length, datatype: 'float32' });
  delete res.intent;
  return res;
}
