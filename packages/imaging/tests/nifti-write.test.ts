import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeNifti,
  fieldMmToVoxels,
  fieldVoxelsToMm,
  makeVolume,
  parseNifti,
  readDisplacementField,
  readNifti,
  writeDisplacementField,
  writeNifti,
  type NiftiWriteDatatype,
  type Volume,
} from '../src/index.ts';
import { expectLlmedError, hasPython, hasShared, makeTmp, runPython, shared } from './helpers.ts';

const tmp = makeTmp();
afterAll(() => tmp.cleanup());
const t = (f: string) => path.join(tmp.dir, f);

// An oblique, left-handed affine (like a FreeSurfer LIA volume, rotated 10 degrees): exercises qfac and the quaternion.
const c10 = Math.cos(Math.PI / 18);
const s10 = Math.sin(Math.PI / 18);
const OBLIQUE = [-1.2 * c10, 0, -0.9 * s10, 101.5, -1.2 * s10, 0, 0.9 * c10, -12.25, 0, -1.1, 0, 40, 0, 0, 0, 1];

function sample(datatype: NiftiWriteDatatype, dims: [number, number, number] = [7, 6, 5]): Volume {
  const n = dims[0] * dims[1] * dims[2];
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (datatype === 'float32') data[i] = Math.sin(i) * 1000.25;
    else if (datatype === 'uint8') data[i] = (i * 7) % 256;
    else if (datatype === 'int16') data[i] = ((i * 997) % 65536) - 32768;
    else data[i] = (i * 104729) % 2 ** 24 - 2 ** 23;
  }
  return makeVolume(data, dims, { affine: OBLIQUE, datatype, description: `llmed test ${datatype}` });
}

describe('writeNifti -> readNifti round trip', () => {
  const cases: Array<[NiftiWriteDatatype, 'nifti1' | 'nifti2', 'little' | 'big', string]> = [
    ['float32', 'nifti1', 'little', '.nii.gz'],
    ['int16', 'nifti1', 'little', '.nii.gz'],
    ['uint8', 'nifti1', 'little', '.nii'],
    ['int32', 'nifti1', 'little', '.nii.gz'],
    ['float32', 'nifti1', 'big', '.nii'],
    ['int16', 'nifti1', 'big', '.nii.gz'],
    ['int32', 'nifti2', 'little', '.nii.gz'],
    ['float32', 'nifti2', 'big', '.nii'],
  ];
  for (const [dt, format, endianness, ext] of cases) {
    it(`${dt} ${format} ${endianness}-endian ${ext}`, async () => {
      const vol = sample(dt);
      const f = t(`rt_${dt}_${format}_${endianness}${ext}`);
      await writeNifti(f, vol, { format, endianness });
      const back = await readNifti(f);
      expect(back.header.format).toBe(format === 'nifti1' ? 'NIfTI-1' : 'NIfTI-2');
      expect(back.header.littleEndian).toBe(endianness === 'little');
      expect(back.header.datatype).toBe(dt);
      expect(back.dims).toEqual(vol.dims);
      expect(back.description).toBe(`llmed test ${dt}`);
      expect(Array.from(back.data)).toEqual(Array.from(vol.data));
      back.affine.forEach((a, i) => expect(a).toBeCloseTo(OBLIQUE[i], 4));
      // the compressed flag follows the file name
      expect(readFileSync(f)[0] === 0x1f).toBe(ext === '.nii.gz');
    });
  }

  it('the qform alone reproduces the affine (rotation, reflection via qfac, zooms)', () => {
    const raw = encodeNifti(sample('float32'));
    new DataView(raw.buffer, raw.byteOffset).setInt16(254, 0, true); // drop the sform
    const q = parseNifti(raw, 'qform-only');
    expect(q.header.affineSource).toBe('qform');
    expect(q.header.pixdim[0]).toBe(-1); // left-handed
    q.affine.forEach((a, i) => expect(a).toBeCloseTo(OBLIQUE[i], 4));
  });

  it('rounds and clamps float data written as an integer type', async () => {
    const vol = makeVolume(new Float32Array([-3.6, 0.4, 2.5, 300, NaN, 254.6, 1, 2]), [2, 2, 2]);
    const f = t('clamp.nii');
    await writeNifti(f, vol, { datatype: 'uint8' });
    expect(Array.from((await readNifti(f)).data)).toEqual([0, 0, 3, 255, 0, 255, 1, 2]);
  });

  it('a float image still labelled uint8 (from its source file) is written as float32, not rounded', async () => {
    const vol = makeVolume(new Float32Array([0.25, 1, 2, 3, 4, 5, 6, 7]), [2, 2, 2], { datatype: 'uint8' });
    const f = t('keepfloat.nii');
    await writeNifti(f, vol);
    const back = await readNifti(f);
    expect(back.header.datatype).toBe('float32');
    expect(back.data[0]).toBe(0.25);
    await writeNifti(f, { ...vol, data: new Float32Array([0, 1, 2, 3, 4, 5, 6, 255]) });
    expect((await readNifti(f)).header.datatype).toBe('uint8');
  });

  it('writes atomically: no temp file left, and a failed write leaves nothing', async () => {
    const f = t('atomic.nii.gz');
    await writeNifti(f, sample('uint8'));
    expect(readdirSync(tmp.dir).filter((x) => x.includes('.tmp-'))).toEqual([]);
    const bad = path.join(tmp.dir, 'no-such-dir', 'x.nii.gz');
    await expectLlmedError(() => writeNifti(bad, sample('uint8')), 'nifti', [bad, /cannot write file/]);
    expect(existsSync(bad)).toBe(false);
  });

  it('refuses data that does not fit the dims', async () => {
    const vol = { ...sample('float32'), data: new Float32Array(5) };
    await expectLlmedError(() => writeNifti(t('bad.nii'), vol), 'nifti', [/5 values/]);
  });

  it.skipIf(!hasPython)('nibabel reads our files: data, affine, qform, codes, intent, big-endian, NIfTI-2', async () => {
    const files: string[] = [];
    for (const [dt, format, endianness] of [['float32', 'nifti1', 'little'], ['int16', 'nifti1', 'big'], ['int32', 'nifti2', 'little']] as const) {
      const f = t(`nib_${dt}_${format}_${endianness}.nii.gz`);
      await writeNifti(f, sample(dt), { format, endianness });
      files.push(f);
    }
    const res = runPython<Array<{ shape: number[]; sum: number; first: number[]; affine: number[]; qform: number[]; codes: number[]; dtype: string; descr: string }>>(
      `import nibabel as nib, numpy as np, json, sys
out = []
for f in sys.argv[1:]:
    img = nib.load(f); h = img.header; d = np.asarray(img.dataobj).astype(np.float64)
    q, qc = h.get_qform(coded=True); s, sc = h.get_sform(coded=True)
    out.append({"shape": list(d.shape), "sum": float(d.sum()), "first": d.reshape(-1, order='F')[:5].tolist(),
                "affine": img.affine.reshape(-1).tolist(), "qform": q.reshape(-1).tolist(), "codes": [int(qc), int(sc)],
                "dtype": str(h.get_data_dtype()), "descr": h['descrip'].item().decode()})
print(json.dumps(out))`,
      files,
    );
    const vols = [sample('float32'), sample('int16'), sample('int32')];
    res.forEach((r, n) => {
      const v = vols[n];
      expect(r.shape).toEqual([7, 6, 5]);
      let sum = 0;
      for (const x of v.data) sum += x;
      expect(r.sum).toBeCloseTo(sum, 1);
      expect(r.first).toEqual(Array.from(v.data.subarray(0, 5)).map((x) => Math.fround(x)));
      expect(r.codes).toEqual([2, 2]);
      r.affine.forEach((a, i) => expect(a).toBeCloseTo(OBLIQUE[i], 4));
      r.qform.forEach((a, i) => expect(a).toBeCloseTo(OBLIQUE[i], 4));
      expect(r.descr).toBe(v.description);
    });
    expect(res[1].dtype).toBe('>i2');
  });
});

describe('displacement fields on disk', () => {
  const dims: [number, number, number] = [6, 5, 4];
  const n = 6 * 5 * 4;
  const ref = makeVolume(new Float32Array(n), dims, { affine: OBLIQUE });
  const field = new Float32Array(3 * n).map((_, i) => Math.cos(i * 0.37) * 2);
  const f = t('field.nii.gz');
  beforeAll(async () => {
    await writeDisplacementField(f, field, ref);
  });

  it('is a 5-D float32 vector image, intent DISPVECT (1006), in mm', async () => {
    const raw = gunzipSync(readFileSync(f));
    const dv = new DataView(raw.buffer, raw.byteOffset);
    expect([0, 1, 2, 3, 4, 5].map((d) => dv.getInt16(40 + 2 * d, true))).toEqual([5, 6, 5, 4, 1, 3]);
    expect(dv.getInt16(68, true)).toBe(1006);
    const back = await readNifti(f);
    expect(back.intent).toBe('DISPVECT');
    expect(back.components).toBe(3);
    const mm = fieldVoxelsToMm(field, ref);
    // world vector of voxel 7 = M · u
    const u = [field[7], field[n + 7], field[2 * n + 7]];
    const M = OBLIQUE;
    for (let r = 0; r < 3; r++) {
      expect(back.data[r * n + 7]).toBeCloseTo(M[4 * r] * u[0] + M[4 * r + 1] * u[1] + M[4 * r + 2] * u[2], 4);
      expect(back.data[r * n + 7]).toBeCloseTo(mm[r * n + 7], 5);
    }
  });

  it('reads back in voxel units (mm -> voxels inverts voxels -> mm)', async () => {
    const back = await readDisplacementField(f);
    for (let i = 0; i < field.length; i++) expect(back.data[i]).toBeCloseTo(field[i], 4);
    const again = fieldMmToVoxels(fieldVoxelsToMm(field, ref), ref);
    for (let i = 0; i < field.length; i++) expect(again[i]).toBeCloseTo(field[i], 5);
  });

  it('refuses a field that does not match the reference grid', async () => {
    const g = t('badfield.nii.gz');
    await expectLlmedError(() => writeDisplacementField(g, new Float32Array(10), ref), 'nifti', [g, /needs 3 x 120/]);
    expect(existsSync(g)).toBe(false);
  });

  it.skipIf(!hasPython)('nibabel sees shape (6,5,4,1,3) and intent DISPVECT', () => {
    const r = runPython<{ shape: number[]; intent: string; v: number }>(
      `import nibabel as nib, json, sys
img = nib.load(sys.argv[1])
print(json.dumps({"shape": list(img.shape), "intent": img.header.get_intent()[0], "v": float(img.dataobj[1, 2, 3, 0, 2])}))`,
      [f],
    );
    expect(r.shape).toEqual([6, 5, 4, 1, 3]);
    expect(r.intent).toBe('displacement vector'); // nibabel's name for code 1006
    const mm = fieldVoxelsToMm(field, ref);
    expect(r.v).toBeCloseTo(mm[2 * n + 1 + 6 * (2 + 5 * 3)], 4);
  });
});

describe.skipIf(!hasShared)('round trip of a real volume', () => {
  it('bert_aseg (int16, LIA) survives write -> read unchanged', async () => {
    const v = await readNifti(shared('brain/bert_aseg.nii.gz'));
    const f = t('bert_aseg_copy.nii.gz');
    await writeNifti(f, v);
    const back = await readNifti(f);
    expect(back.header.datatype).toBe('int16');
    expect(back.affine.map((x) => +x.toFixed(4))).toEqual(v.affine.map((x) => +x.toFixed(4)));
    expect(Buffer.compare(Buffer.from(back.data.buffer, back.data.byteOffset, back.data.byteLength), Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength))).toBe(0);
  });
});
