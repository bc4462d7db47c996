import { describe, expect, it } from 'vitest';
import {
  assertIntegerLabels,
  FREESURFER_LEFT_RIGHT_PAIRS,
  labelCounts,
  makeVolume,
  mergeLeftRight,
  oneHot,
  readLabelMap,
  relabel,
  resampleToShape,
  toLabelMap,
  type Volume,
  uniqueLabels,
} from '../src/index.ts';
import { expectLlmedError, hasMricron, hasShared, mricron, shared } from './helpers.ts';

describe('label maps from arrays', () => {
  const vol = makeVolume(new Float32Array([0, 2, 41, 3, 42, 99, 0, 17]), [2, 2, 2]);

  it('uniqueLabels and labelCounts', () => {
    expect(uniqueLabels(vol)).toEqual([0, 2, 3, 17, 41, 42, 99]);
    expect(labelCounts(vol).get(0)).toBe(2);
    expect(uniqueLabels(makeVolume(new Float32Array([1e9, -1e9, 3]), [3, 1, 1]))).toEqual([-1e9, 3, 1e9]);
  });

  it('relabel: unmapped -> 0 by default, or kept', () => {
    expect(Array.from(relabel(vol, { 2: 1, 41: 1, 17: 5 }).data)).toEqual([0, 1, 1, 0, 0, 0, 0, 5]);
    expect(Array.from(relabel(vol, new Map([[99, 7]]), { unmapped: 'keep' }).data)).toEqual([0, 2, 41, 3, 42, 7, 0, 17]);
  });

  it('mergeLeftRight maps FreeSurfer right ids onto left ids', () => {
    expect(FREESURFER_LEFT_RIGHT_PAIRS).toHaveLength(16);
    expect(Array.from(mergeLeftRight(vol).data)).toEqual([0, 2, 2, 3, 3, 99, 0, 17]);
  });

  it('oneHot gives one Float32 channel per label', () => {
    const oh = oneHot(vol, [2, 41, 99]);
    expect(oh.components).toBe(3);
    expect(Array.from(oh.data.subarray(0, 8))).toEqual([0, 1, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(oh.data.subarray(8, 16))).toEqual([0, 0, 1, 0, 0, 0, 0, 0]);
    expect(Array.from(oh.data.subarray(16, 24))).toEqual([0, 0, 0, 0, 0, 1, 0, 0]);
  });

  it('non-integer values are a dataError naming the file and the voxel', async () => {
    const bad = makeVolume(new Float32Array([0, 1, 2.5, 3, 0, 0, 0, NaN]), [2, 2, 2]);
    await expectLlmedError(() => assertIntegerLabels(bad, 'seg_bad.nii.gz'), 'data', ['seg_bad.nii.gz', /not integer-valued: voxel \(0, 1, 0\) = 2.5/, /2 of 8/]);
    expect(() => toLabelMap(vol, 'ok')).not.toThrow();
  });
});

describe.skipIf(!hasMricron)('AAL atlas', () => {
  it('has 116 labels plus background', async () => {
    const aal = await readLabelMap(mricron('aal.nii.gz'));
    expect(aal.data).toBeInstanceOf(Int32Array);
    const labels = uniqueLabels(aal);
    expect(labels.length).toBe(117);
    expect(labels[0]).toBe(0);
  });

  it('a T1 image (ch2, uint8) is integer-valued, so it passes as labels', async () => {
    // uint8 data is integer by construction; the check is about values, not meaning
    await expect(readLabelMap(mricron('ch2.nii.gz'))).resolves.toBeDefined();
  });
});

describe.skipIf(!hasShared)('FreeSurfer aseg', () => {
  it('reading a float intensity image as labels fails with the file named', async () => {
    const f = shared('brain/vxm_subject_t1.nii.gz');
    await expectLlmedError(() => readLabelMap(f), 'data', [f, /label map is not integer-valued/]);
  });

  it('bert_aseg: merge left/right leaves no right-hemisphere ids and preserves voxel totals', async () => {
    const aseg = await readLabelMap(shared('brain/bert_aseg.nii.gz'));
    const before = labelCounts(aseg);
    const merged = mergeLeftRight(aseg);
    const after = labelCounts(merged);
    for (const [left, right] of FREESURFER_LEFT_RIGHT_PAIRS) {
      expect(after.has(right)).toBe(false);
      expect(after.get(left) ?? 0).toBe((before.get(left) ?? 0) + (before.get(right) ?? 0));
    }
  });

  it('vxm aseg one-hot over the 30-label evaluation subset', async () => {
    const subset = [2, 3, 4, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 28, 31, 41, 42, 43, 46, 47, 49, 50, 51, 52, 53, 54, 60, 63];
    // at half resolution (nearest), to keep 30 float channels small
    const aseg = resampleToShape(await readLabelMap(shared('brain/vxm_subject_aseg.nii.gz')), [80, 96, 112], 'nearest') as Volume<Int32Array>;
    const oh = oneHot(aseg, subset);
    const nvox = aseg.data.length;
    expect(oh.components).toBe(30);
    // every voxel is in at most one channel, and exactly one iff its label is in the subset
    const inSubset = new Set(subset);
    let wrong = 0;
    let inside = 0;
    for (let i = 0; i < nvox; i++) {
      let s = 0;
      for (let c = 0; c < 30; c++) s += oh.data[c * nvox + i];
      const want = inSubset.has(aseg.data[i]) ? 1 : 0;
      inside += want;
      if (s !== want) wrong++;
    }
    expect(wrong).toBe(0);
    expect(inside).toBeGreaterThan(nvox / 10);
  });
});
