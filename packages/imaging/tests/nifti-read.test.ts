import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { axisCodes, countNonFinite, describeExtraDimensions, formatInspect, inspectVolume, parseNifti, readNifti, readNiftiSync, writeNifti, makeVolume, NIFTI_DATATYPES } from '../src/index.ts';
import { expectLlmedError, hasMricron, hasPython, hasShared, makeTmp, mricron, repoRoot, runPython, shared } from './helpers.ts';

const tmp = makeTmp();
afterAll(() => tmp.cleanup());
const t = (f: string) => path.join(tmp.dir, f);

describe.skipIf(!hasMricron)('readNifti on the mricron templates', () => {
  it('reads ch2.nii.gz: 181x217x181 uint8, 1 mm, RAS, sform', async () => {
    const v = await readNifti(mricron('ch2.nii.gz'));
    expect(v.dims).toEqual([181, 217, 181]);
    expect(v.components).toBe(1);
    expect(v.header.format).toBe('NIfTI-1');
    expect(v.header.datatype).toBe('uint8');
    expect(v.header.affineSource).toBe('sform');
    expect(v.spacing).toEqual([1, 1, 1]);
    expect(axisCodes(v.affine)).toBe('RAS');
    expect(v.affine).toEqual([1, 0, 0, -90, 0, 1, 0, -125, 0, 0, 1, -71, 0, 0, 0, 1]);
    expect(v.data).toBeInstanceOf(Float32Array);
    expect(v.data.length).toBe(181 * 217 * 181);
    expect(v.nonFinite).toBe(0);
  });

  it('sync and async readers agree', async () => {
    const a = await readNifti(mricron('aal.nii.gz'));
    const b = readNiftiSync(mricron('aal.nii.gz'));
    expect(b.dims).toEqual(a.dims);
    expect(Buffer.compare(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength), Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength))).toBe(0);
    expect(a.intent).toBe('LABEL');
  });

  it.skipIf(!hasPython)('matches nibabel voxel for voxel (ch2, aal)', async () => {
    for (const f of ['ch2.nii.gz', 'aal.nii.gz']) {
      const v = await readNifti(mricron(f));
      let sum = 0;
      let wsum = 0;
      for (let i = 0; i < v.data.length; i++) {
        sum += v.data[i];
        wsum += v.data[i] * (i % 997);
      }
      const ref = runPython<{ sum: number; wsum: number; affine: number[]; v: number }>(
        `import nibabel as nib, numpy as np, json, sys
img = nib.load(sys.argv[1]); d = np.asarray(img.dataobj).astype(np.float64)
flat = d.reshape(-1, order='F')
idx = np.arange(flat.size) % 997
print(json.dumps({"sum": float(flat.sum()), "wsum": float((flat * idx).sum()), "affine": img.affine.reshape(-1).tolist(), "v": float(d[90, 100, 80])}))`,
        [mricron(f)],
      );
      expect(sum).toBe(ref.sum);
      expect(wsum).toBe(ref.wsum);
      expect(v.data[90 + 181 * (100 + 217 * 80)]).toBe(ref.v);
      v.affine.forEach((a, i) => expect(a).toBeCloseTo(ref.affine[i], 5));
    }
  });
});

describe.skipIf(!hasShared)('readNifti on the shared real volumes', () => {
  it('bert_t1: 256^3, LIA, sform with qform_code 0', async () => {
    const v = await readNifti(shared('brain/bert_t1.nii.gz'));
    expect(v.dims).toEqual([256, 256, 256]);
    expect(axisCodes(v.affine)).toBe('LIA');
    expect(v.header.affineSource).toBe('sform');
    expect(v.affine[0]).toBe(-1);
    expect(v.affine[6]).toBe(1);
    expect(v.affine[9]).toBe(-1);
  });

  it('image_A seg: qform only, odd zooms become the affine (as nibabel)', async () => {
    const v = await readNifti(shared('brain/image_A_160x192x144_seg.nii.gz'));
    expect(v.header.affineSource).toBe('qform');
    expect(v.spacing[0]).toBeCloseTo(0.98125, 4);
    expect(v.spacing[1]).toBeCloseTo(0.96875, 4);
    expect(v.affine[3]).toBeCloseTo(3, 5);
    expect(v.affine[7]).toBeCloseTo(6, 5);
  });

  it('knee labels: oblique qform (rotation about z) decoded like nibabel', async () => {
    const v = await readNifti(shared('knee-labels/OAI_ZIB-UQ_9001104_label.nii.gz'));
    expect(v.dims).toEqual([160, 384, 384]);
    expect(v.header.datatype).toBe('uint16');
    const expected = [0.6932, -0.0507, 0, 22.7569, 0.0974, 0.361, 0, -80.6992, 0, 0, 0.3646, -80.2892];
    expected.forEach((e, i) => expect(v.affine[i]).toBeCloseTo(e, 3));
  });

  it('4-D file [44,59,41,3] is read as 3 components, component-major', async () => {
    const v = await readNifti(shared('prostate-mr-us/c0_fixed_labels.nii.gz'));
    expect(v.dims).toEqual([44, 59, 41]);
    expect(v.components).toBe(3);
    expect(v.header.datatype).toBe('float64');
    expect(v.data.length).toBe(44 * 59 * 41 * 3);
  });

  it('LPS abdominal MR and int16 CT', async () => {
    const mr = await readNifti(shared('abdomen/example_mr_sm.nii.gz'));
    expect(axisCodes(mr.affine)).toBe('LPS');
    const ct = await readNifti(shared('abdomen/example_ct_sm.nii.gz'));
    expect(ct.header.datatype).toBe('int16');
    let min = Infinity;
    for (const x of ct.data) min = Math.min(min, x);
    expect(min).toBeLessThan(-500); // Hounsfield units: air is about -1000
  });
});

/** ch2 decompressed, for building broken files. */
function ch2Raw(): Buffer {
  return gunzipSync(readFileSync(mricron('ch2.nii.gz')));
}

describe.skipIf(!hasMricron)('bad NIfTI input: clear niftiError naming the file and the problem', () => {
  it('truncated .nii.gz (a copy of ch2.nii.gz cut in half)', async () => {
    const gz = readFileSync(mricron('ch2.nii.gz'));
    const f = t('ch2_truncated.nii.gz');
    writeFileSync(f, gz.subarray(0, Math.floor(gz.length / 2)));
    await expectLlmedError(() => readNifti(f), 'nifti', [f, /truncated gzip stream/]);
    await expectLlmedError(() => readNiftiSync(f), 'nifti', [f, /truncated gzip stream/]);
  });

  it('truncated uncompressed .nii (image data cut short)', async () => {
    const raw = ch2Raw();
    const f = t('ch2_truncated.nii');
    writeFileSync(f, raw.subarray(0, 352 + 1000));
    await expectLlmedError(() => readNifti(f), 'nifti', [f, /181x217x181 uint8/, /holds only 1000 bytes/, /truncated/]);
  });

  it('wrong magic', async () => {
    const raw = ch2Raw();
    raw.write('XYZ\0', 344, 'latin1');
    const f = t('ch2_badmagic.nii.gz');
    writeFileSync(f, gzipSync(raw, { level: 1 }));
    await expectLlmedError(() => readNifti(f), 'nifti', [f, /wrong magic "XYZ/, /n\+1/]);
  });

  it('not a NIfTI at all (sizeof_hdr)', async () => {
    const f = t('text.nii');
    writeFileSync(f, 'hello world, this is not an image'.repeat(20));
    await expectLlmedError(() => readNifti(f), 'nifti', [f, /not a NIfTI file: sizeof_hdr/]);
  });

  it('header dims needing far more memory than the file holds fail before allocating', async () => {
    const raw = ch2Raw();
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    dv.setInt16(42, 30000, true);
    dv.setInt16(44, 30000, true);
    dv.setInt16(46, 30000, true);
    dv.setInt16(70, 16, true); // float32: 30000^3 * 4 bytes = 100 TiB
    dv.setInt16(72, 32, true);
    const f = t('ch2_hugedims.nii.gz');
    writeFileSync(f, gzipSync(raw, { level: 1 }));
    const before = process.memoryUsage().rss;
    const t0 = performance.now();
    await expectLlmedError(() => readNifti(f), 'nifti', [f, /30000x30000x30000 float32/, /holds only/]);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(process.memoryUsage().rss - before).toBeLessThan(512 * 1024 ** 2);
  });

  it('unsupported datatype (complex64, code 32) lists the supported ones', async () => {
    const raw = ch2Raw();
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    dv.setInt16(70, 32, true);
    dv.setInt16(72, 64, true);
    const f = t('ch2_complex.nii');
    writeFileSync(f, raw);
    await expectLlmedError(() => readNifti(f), 'nifti', [f, /unsupported datatype complex64 \(code 32\)/, /supported: uint8 \(2\), int16 \(4\)/, /float32 \(16\)/]);
  });

  it('two-file .hdr/.img magic is refused with a hint', async () => {
    const raw = ch2Raw();
    raw.write('ni1\0', 344, 'latin1');
    const f = t('pair.nii');
    writeFileSync(f, raw);
    await expectLlmedError(() => readNifti(f), 'nifti', [f, /\.hdr\/\.img/]);
  });

  it('invalid dim (zero-length axis)', async () => {
    const raw = ch2Raw();
    new DataView(raw.buffer, raw.byteOffset).setInt16(44, 0, true);
    const f = t('zerodim.nii');
    writeFileSync(f, raw);
    await expectLlmedError(() => readNifti(f), 'nifti', [f, /invalid dim\[2\] = 0/]);
  });

  it('a gzip stream inflating past the limit is refused (gzip-bomb guard)', async () => {
    const f = mricron('ch2.nii.gz');
    await expectLlmedError(() => readNifti(f, { maxBytes: 1_000_000 }), 'nifti', [f, /inflates to more than 976.6 KiB/]);
    await expectLlmedError(() => readNiftiSync(f, { maxBytes: 1_000_000 }), 'nifti', [f, /inflates to more than/]);
  });

  it('missing file', async () => {
    const f = t('does-not-exist.nii.gz');
    await expectLlmedError(() => readNifti(f), 'nifti', [f, /ENOENT/]);
  });
});

describe.skipIf(!hasMricron)('header semantics', () => {
  it('applies scl_slope / scl_inter; slope 0 means identity', async () => {
    const raw = ch2Raw();
    const ref = parseNifti(raw, 'ch2');
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    dv.setFloat32(112, 2.5, true);
    dv.setFloat32(116, -10, true);
    const scaled = parseNifti(raw, 'scaled');
    expect(scaled.header.scaled).toBe(true);
    for (const i of [0, 12345, 3_000_000, ref.data.length - 1]) expect(scaled.data[i]).toBeCloseTo(ref.data[i] * 2.5 - 10, 4);
    dv.setFloat32(112, 0, true);
    const zero = parseNifti(raw, 'slope0');
    expect(zero.header.scaled).toBe(false);
    expect(zero.data[3_000_000]).toBe(ref.data[3_000_000]);
  });

  it('prefers sform over qform when sform_code > 0, else the qform', () => {
    const raw = ch2Raw();
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    // qform: identity rotation, 2 mm voxels, offset (1,2,3)
    dv.setInt16(252, 1, true);
    dv.setFloat32(256, 0, true);
    dv.setFloat32(260, 0, true);
    dv.setFloat32(264, 0, true);
    dv.setFloat32(268, 1, true);
    dv.setFloat32(272, 2, true);
    dv.setFloat32(276, 3, true);
    dv.setFloat32(80, 2, true);
    dv.setFloat32(84, 2, true);
    dv.setFloat32(88, 2, true);
    expect(parseNifti(raw, 'both').affine).toEqual([1, 0, 0, -90, 0, 1, 0, -125, 0, 0, 1, -71, 0, 0, 0, 1]);
    dv.setInt16(254, 0, true); // sform_code 0
    const q = parseNifti(raw, 'qonly');
    expect(q.header.affineSource).toBe('qform');
    expect(q.affine).toEqual([2, 0, 0, 1, 0, 2, 0, 2, 0, 0, 2, 3, 0, 0, 0, 1]);
    dv.setInt16(252, 0, true); // neither: pixdim
    const p = parseNifti(raw, 'none');
    expect(p.header.affineSource).toBe('pixdim');
    expect(p.affine).toEqual([2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1]);
  });
});

describe.skipIf(!hasPython)('files written by nibabel (an independent writer)', () => {
  it('big-endian NIfTI-2 with scl_slope/inter, sform and qform; and a big-endian NIfTI-1 float64', async () => {
    const f2 = t('nib2_be.nii.gz');
    const f1 = t('nib1_be.nii');
    const ref = runPython<{ affine: number[]; vals: number[]; vals1: number[] }>(
      `import nibabel as nib, numpy as np, json, sys
rng = np.random.default_rng(0)
import struct, gzip
raw = rng.integers(-300, 300, size=(9, 8, 7)).astype('>i2')
c, s = np.cos(0.3), np.sin(0.3)
aff = np.array([[1.5 * c, -0.8 * s, 0, -20], [1.5 * s, 0.8 * c, 0, 10], [0, 0, -2.0, 33], [0, 0, 0, 1]])
hdr = nib.Nifti2Header(endianness='>'); hdr.set_data_dtype(np.dtype('>i2'))
img = nib.Nifti2Image(raw, aff, header=hdr)
img.header.set_qform(aff, code=1); img.header.set_sform(aff, code=2)
plain = sys.argv[1][:-3]
nib.save(img, plain)
# nibabel recomputes scaling on save, so patch scl_slope / scl_inter (big-endian float64 at 176 / 184)
b = bytearray(open(plain, 'rb').read()); b[176:192] = struct.pack('>dd', 0.5, 100.0)
open(sys.argv[1], 'wb').write(gzip.compress(bytes(b)))
d64 = (np.arange(9 * 8 * 7, dtype='>f8').reshape((9, 8, 7), order='F') / 3.0)
h1 = nib.Nifti1Header(endianness='>'); h1.set_data_dtype(np.dtype('>f8'))
nib.save(nib.Nifti1Image(d64, aff, header=h1), sys.argv[2])
back = nib.load(sys.argv[1])
assert back.header.get_data_dtype() == np.dtype('>i2') and back.dataobj.slope == 0.5 and back.dataobj.inter == 100.0
scaled = np.asarray(back.dataobj, dtype=np.float64).reshape(-1, order='F')
print(json.dumps({"affine": back.affine.reshape(-1).tolist(), "vals": scaled[:50].tolist(), "vals1": d64.reshape(-1, order='F')[-5:].tolist()}))`,
      [f2, f1],
    );
    const v = await readNifti(f2);
    expect(v.header.format).toBe('NIfTI-2');
    expect(v.header.littleEndian).toBe(false);
    expect(v.header.scaled).toBe(true);
    expect(v.header.datatype).toBe('int16');
    expect(v.dims).toEqual([9, 8, 7]);
    ref.affine.forEach((a, i) => expect(v.affine[i]).toBeCloseTo(a, 6));
    ref.vals.forEach((x, i) => expect(v.data[i]).toBe(x));
    const w = await readNifti(f1);
    expect(w.header.datatype).toBe('float64');
    expect(w.header.littleEndian).toBe(false);
    ref.vals1.forEach((x, i) => expect(w.data[w.data.length - 5 + i]).toBeCloseTo(x, 4));
  });
});

describe('NaN / Inf voxels are counted, not thrown on', () => {
  it('reports nonFinite for a float file with NaN and +-Inf', async () => {
    const data = new Float32Array(4 * 5 * 6).map((_, i) => i);
    data[3] = NaN;
    data[10] = Infinity;
    data[11] = -Infinity;
    const f = t('nan.nii.gz');
    await writeNifti(f, makeVolume(data, [4, 5, 6]));
    const v = await readNifti(f);
    expect(v.nonFinite).toBe(3);
    expect(countNonFinite(v.data)).toBe(3);
    expect(Number.isNaN(v.data[3])).toBe(true);
  });

  it('lists the datatypes it supports', () => {
    expect(Object.values(NIFTI_DATATYPES).map((d) => d.name)).toEqual(
      expect.arrayContaining(['uint8', 'int8', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'float64', 'int64', 'uint64']),
    );
  });
});

describe('other image formats are named, with how to convert them to NIfTI', () => {
  const bytesOf = (head: string, at = 0, size = 600) => {
    const b = new Uint8Array(size);
    for (let q = 0; q < head.length; q++) b[at + q] = head.charCodeAt(q);
    return b;
  };
  const cases: Array<[string, Uint8Array, RegExp, RegExp]> = [
    ['brain.mgz', bytesOf('\x00\x00\x00\x01'), /a FreeSurfer MGH\/MGZ volume/, /mri_convert brain\.mgz out\.nii\.gz/],
    ['scan.nrrd', bytesOf('NRRD0004\n'), /an NRRD volume/, /SimpleITK/],
    ['scan.mha', bytesOf('ObjectType = Image\n'), /an ITK MetaImage/, /SimpleITK/],
    ['IM0001', bytesOf('DICM', 128), /a DICOM file/, /dcm2niix/],
    ['scan.npy', bytesOf('\x93NUMPY'), /a NumPy array/, /real affine/],
  ];
  it.each(cases)('%s', async (name, bytes, what, how) => {
    await expectLlmedError(() => parseNifti(bytes, name), 'nifti', [what, how, /not a NIfTI file: this is/]);
  });
});

// nibabel's own test files (they ship in its wheel, which the venv holds)
const NIBABEL_DATA = path.join(repoRoot, '.venv', 'lib', 'python3.11', 'site-packages', 'nibabel', 'tests', 'data');
describe.skipIf(!existsSync(path.join(NIBABEL_DATA, 'row_major.dconn.nii')))('peer test files (nibabel tests/data)', () => {
  it('a CIFTI-2 connectivity matrix (intent 3001) is refused, not shown as a 1×1×1 volume', async () => {
    await expectLlmedError(() => readNifti(path.join(NIBABEL_DATA, 'row_major.dconn.nii')), 'nifti', [/a CIFTI-2 file \(intent 3001\)/, /not a voxel grid/, /wb_command/]);
  });
  it('4-D series are frames, vector images components', async () => {
    const series = await readNifti(path.join(NIBABEL_DATA, 'example4d.nii.gz'));
    expect(describeExtraDimensions(series)).toEqual({ kind: 'frames', count: 2, text: '2 frames (a 4-D series)' });
    expect(formatInspect(await inspectVolume(path.join(NIBABEL_DATA, 'functional.nii')))).toMatch(/dims {9}17 x 21 x 3 x 20 frames \(a 4-D series\)/);
    const vec = makeVolume(new Float32Array(8 * 3), [2, 2, 2], { components: 3 });
    const file = path.join(tmp.dir, 'vector.nii.gz');
    await writeNifti(file, vec);
    expect(describeExtraDimensions(await readNifti(file)).kind).toBe('components');
  });
});
