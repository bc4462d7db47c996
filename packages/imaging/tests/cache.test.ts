import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeVolume, readLabelMap, readNifti, readPreparedVolume, reorientToCanonical, resampleToShape, writePreparedVolume } from '../src/index.ts';
import { expectLlmedError, hasPython, hasShared, makeTmp, runPython, shared } from './helpers.ts';

const tmp = makeTmp();
afterAll(() => tmp.cleanup());

describe('prepared cache from synthetic volumes', () => {
  it('float32 round trip with the documented header', async () => {
    const v = makeVolume(new Float32Array(2 * 3 * 4 * 3).map((_, i) => i * 0.5 - 3), [2, 3, 4], { components: 3, affine: [2, 0, 0, 1, 0, 2, 0, 2, 0, 0, 2, 3, 0, 0, 0, 1] });
    const h = await writePreparedVolume(tmp.dir, 'field', v, { ops: [{ op: 'minmax' }], meta: { note: 'x' } });
    expect(h).toMatchObject({ format: 'llmed-prepared-v1', dataFile: 'field.f32', dtype: 'float32', numpyDtype: '<f4', shape: [3, 4, 3, 2], dims: [2, 3, 4], components: 3, spacing: [2, 2, 2], orientation: 'RAS', bytes: 288, source: null });
    const onDisk = JSON.parse(readFileSync(path.join(tmp.dir, 'field.json'), 'utf8'));
    expect(onDisk).toEqual(h);
    const raw = readFileSync(path.join(tmp.dir, 'field.f32'));
    expect(raw.length).toBe(288);
    expect(raw.readFloatLE(4 * 5)).toBe(v.data[5]);
    const back = await readPreparedVolume(tmp.dir, 'field');
    expect(Array.from(back.volume.data)).toEqual(Array.from(v.data));
    expect(back.volume.affine).toEqual(v.affine);
    expect(readdirSync(tmp.dir).some((f) => f.includes('.tmp-'))).toBe(false);
  });

  it('labels are stored as int32', async () => {
    const v = makeVolume(new Int32Array([0, 1, 2, 41, 0, 0, 0, 7]), [2, 2, 2]);
    const h = await writePreparedVolume(tmp.dir, 'lab', v);
    expect(h.dataFile).toBe('lab.i32');
    expect(h.numpyDtype).toBe('<i4');
    const back = await readPreparedVolume(tmp.dir, 'lab');
    expect(back.volume.data).toBeInstanceOf(Int32Array);
    expect(Array.from(back.volume.data)).toEqual([0, 1, 2, 41, 0, 0, 0, 7]);
  });

  it('a data file of the wrong size is a dataError naming it', async () => {
    const v = makeVolume(new Float32Array(64), [4, 4, 4]);
    await writePreparedVolume(tmp.dir, 'short', v);
    const f = path.join(tmp.dir, 'short.f32');
    truncateSync(f, 100);
    await expectLlmedError(() => readPreparedVolume(tmp.dir, 'short'), 'data', [f, /has 100 bytes/, /promises 256/]);
  });

  it('refuses names with path separators', async () => {
    await expectLlmedError(() => writePreparedVolume(tmp.dir, '../evil', makeVolume(new Float32Array(1), [1, 1, 1])), 'data', [/invalid prepared-volume name/]);
  });
});

describe.skipIf(!hasShared)('prepared cache from a real scan', () => {
  it('records the source sha256 and numpy.memmap reads the same voxels', async () => {
    const src = shared('brain/vxm_subject_t1.nii.gz');
    const seg = shared('brain/vxm_subject_aseg.nii.gz');
    const img = resampleToShape(reorientToCanonical(await readNifti(src)), [80, 96, 112], 'linear');
    const lab = resampleToShape(await readLabelMap(seg), [80, 96, 112], 'nearest');
    const ops = [{ op: 'reorient', to: 'RAS' }, { op: 'resample', shape: [80, 96, 112] }];
    const h = await writePreparedVolume(tmp.dir, 'vxm', img, { source: src, ops });
    await writePreparedVolume(tmp.dir, 'vxm_labels', lab, { source: seg, ops });
    expect(h.source?.sha256).toBe(createHash('sha256').update(readFileSync(src)).digest('hex'));
    expect(h.preprocessing).toEqual(ops);
    if (!hasPython) return;
    const r = runPython<{ shape: number[]; v: number; l: number; sum: number }>(
      `import numpy as np, json, sys
d = sys.argv[1]
h = json.load(open(d + "/vxm.json")); x = np.memmap(d + "/" + h["dataFile"], dtype=h["numpyDtype"], mode="r", shape=tuple(h["shape"]))
hl = json.load(open(d + "/vxm_labels.json")); y = np.memmap(d + "/" + hl["dataFile"], dtype=hl["numpyDtype"], mode="r", shape=tuple(hl["shape"]))
print(json.dumps({"shape": list(x.shape), "v": float(x[0, 50, 40, 30]), "l": int(y[0, 50, 40, 30]), "sum": float(x.astype(np.float64).sum())}))`,
      [tmp.dir],
    );
    expect(r.shape).toEqual([1, 112, 96, 80]);
    const idx = 30 + 80 * (40 + 96 * 50);
    expect(r.v).toBe(img.data[idx]);
    expect(r.l).toBe(lab.data[idx]);
    let sum = 0;
    for (const x of img.data) sum += x;
    expect(r.sum).toBeCloseTo(sum, 0);
  });
});
