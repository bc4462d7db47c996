import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  axisCodes,
  invertAffine,
  makeVolume,
  multiplyAffine,
  parseAxisCodes,
  preprocessField,
  readLabelMap,
  readNifti,
  reorient,
  reorientToCanonical,
  voxelToWorld,
  writeNifti,
  type Volume,
} from '../src/index.ts';
import { expectLlmedError, hasPython, hasShared, makeTmp, runPython, shared } from './helpers.ts';

const tmp = makeTmp();
afterAll(() => tmp.cleanup());

/** Value at integer voxel (i,j,k) of component c. */
const at = (v: Volume, i: number, j: number, k: number, c = 0) => v.data[c * v.dims[0] * v.dims[1] * v.dims[2] + i + v.dims[0] * (j + v.dims[1] * k)];

/** Check that every sampled output voxel holds the input value found at the same world position. */
function expectWorldConsistent(input: Volume, output: Volume, samples = 2000) {
  const m = multiplyAffine(invertAffine(input.affine), output.affine); // output voxel -> input voxel
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  for (let s = 0; s < samples; s++) {
    const [i, j, k] = [rnd(output.dims[0]), rnd(output.dims[1]), rnd(output.dims[2])];
    const p = voxelToWorld(m, i, j, k).map((x) => Math.round(x));
    expect(at(output, i, j, k)).toBe(at(input, p[0], p[1], p[2]));
  }
}

describe('axis codes', () => {
  it('names the orientation of simple affines', () => {
    expect(axisCodes([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])).toBe('RAS');
    expect(axisCodes([-1, 0, 0, 0, 0, 0, 1, 0, 0, -1, 0, 0, 0, 0, 0, 1])).toBe('LIA');
    expect(axisCodes([-3, 0, 0, 0, 0, -3, 0, 0, 0, 0, 3, 0, 0, 0, 0, 1])).toBe('LPS');
    // oblique: 30 degrees about z still resolves to distinct axes
    const c = Math.cos(Math.PI / 6);
    const s = Math.sin(Math.PI / 6);
    expect(axisCodes([c, -s, 0, 0, s, c, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])).toBe('RAS');
  });

  it('rejects malformed target codes', async () => {
    await expectLlmedError(() => parseAxisCodes('RRS'), 'data', [/invalid orientation code 'RRS'/]);
    await expectLlmedError(() => parseAxisCodes('RA'), 'data', [/invalid orientation code/]);
  });
});

describe('preprocessField: a true field in mm onto the prepared grid, in its voxels', () => {
  it('keeps the physical vectors through reorientation and resampling, then divides by the new spacing', () => {
    // A constant field (3, −2, 1.5) mm in world RAS on a 2 mm LIA grid 4×3×5 → RAS, resampled to 7×9×5.
    const dims: [number, number, number] = [4, 3, 5];
    const n = 60;
    const lia = [-2, 0, 0, 10, 0, 0, 2, -20, 0, -2, 0, 30, 0, 0, 0, 1];
    const mm = new Float32Array(3 * n);
    mm.fill(3, 0, n); mm.fill(-2, n, 2 * n); mm.fill(1.5, 2 * n);
    const field = makeVolume(mm, dims, { components: 3, affine: lia, intent: 'DISPVECT' });
    const out = preprocessField(field, { shape: [7, 9, 5], orientation: 'RAS', moving: [], fixed: [] }, 'truth.nii.gz');
    expect(out.dims).toEqual([7, 9, 5]);
    expect(axisCodes(out.affine)).toBe('RAS');
    const m = out.dims[0] * out.dims[1] * out.dims[2];
    const spacing = [Math.hypot(out.affine[0], out.affine[4], out.affine[8]), Math.hypot(out.affine[1], out.affine[5], out.affine[9]), Math.hypot(out.affine[2], out.affine[6], out.affine[10])];
    for (const [c, v] of [[0, 3], [1, -2], [2, 1.5]] as const) {
      for (const q of [0, 17, m - 1]) expect(out.data[c * m + q]).toBeCloseTo(v / spacing[c], 5);
    }
    expect(() => preprocessField(makeVolume(new Float32Array(n), dims), { shape: [4, 3, 5], moving: [], fixed: [] }, 'one.nii.gz')).toThrow(/not a displacement field/);
  });
});

describe('reorientToCanonical on a synthetic LIA volume', () => {
  const dims: [number, number, number] = [4, 3, 5];
  const n = 60;
  const lia = [-1, 0, 0, 10, 0, 0, 1, -20, 0, -1, 0, 30, 0, 0, 0, 1];
  const vol = makeVolume(new Float32Array(n).map((_, i) => i), dims, { affine: lia });

  it('permutes/flips to RAS exactly, with an updated affine', () => {
    const ras = reorientToCanonical(vol);
    expect(axisCodes(ras.affine)).toBe('RAS');
    expect(ras.dims).toEqual([4, 5, 3]);
    // RAS affine of a 1 mm grid is diagonal +1
    expect([ras.affine[0], ras.affine[5], ras.affine[10]]).toEqual([1, 1, 1]);
    expectWorldConsistent(vol, ras, 200);
    // corner voxel (0,0,0) of RAS is the most left-posterior-inferior voxel: world min in every axis
    const w = voxelToWorld(ras.affine, 0, 0, 0);
    const corners = [0, 3].flatMap((i) => [0, 2].flatMap((j) => [0, 4].map((k) => voxelToWorld(lia, i, j, k))));
    for (let a = 0; a < 3; a++) expect(w[a]).toBe(Math.min(...corners.map((c) => c[a])));
  });

  it('round-trips back to LIA bit for bit, and is a no-op on a RAS volume', () => {
    const ras = reorientToCanonical(vol);
    const back = reorient(ras, 'LIA');
    expect(back.dims).toEqual(dims);
    expect(back.affine).toEqual(lia);
    expect(Array.from(back.data)).toEqual(Array.from(vol.data));
    expect(reorientToCanonical(ras)).toBe(ras);
  });

  it('keeps label arrays as they are (Int32 stays Int32)', () => {
    const labels = makeVolume(new Int32Array(n).map((_, i) => i % 7), dims, { affine: lia });
    const ras = reorientToCanonical(labels);
    expect(ras.data).toBeInstanceOf(Int32Array);
    expectWorldConsistent(labels, ras, 200);
  });

  it('rotates voxel-unit displacement vectors with the axes (world displacement unchanged)', () => {
    // A field whose world displacement is (1, 2, 3) mm everywhere, expressed in voxels of the LIA grid.
    const M = lia;
    // world = M3 · u  ->  u = M3^-1 · world; for this orthonormal LIA, M3^-1 = M3^T
    const world = [1, 2, 3];
    const u = [0, 1, 2].map((c) => M[c] * world[0] + M[4 + c] * world[1] + M[8 + c] * world[2]);
    const data = new Float32Array(3 * n);
    for (let c = 0; c < 3; c++) data.fill(u[c], c * n, (c + 1) * n);
    const field = makeVolume(data, dims, { affine: lia, components: 3 });
    const ras = reorientToCanonical(field, 'RAS', { vectors: 'voxel' });
    const A = ras.affine;
    for (const idx of [0, 17, 59]) {
      const v = [ras.data[idx], ras.data[n + idx], ras.data[2 * n + idx]];
      const w = [0, 1, 2].map((r) => A[4 * r] * v[0] + A[4 * r + 1] * v[1] + A[4 * r + 2] * v[2]);
      expect(w).toEqual(world);
    }
    // without the option the channels are only moved, not changed
    const plain = reorientToCanonical(field);
    expect(plain.data[0]).toBe(u[0]);
  });
});

describe.skipIf(!hasShared)('reorienting real volumes', () => {
  it('bert_t1 (LIA, 256^3) -> RAS: world positions preserved voxel for voxel', async () => {
    const v = await readNifti(shared('brain/bert_t1.nii.gz'));
    const t0 = performance.now();
    const ras = reorientToCanonical(v);
    const ms = performance.now() - t0;
    expect(axisCodes(ras.affine)).toBe('RAS');
    expectWorldConsistent(v, ras);
    expect(ms).toBeLessThan(1500);
  });

  it('bert_aseg labels follow the image (same grid after reorienting both)', async () => {
    const img = await readNifti(shared('brain/bert_t1.nii.gz'));
    const lab = await readLabelMap(shared('brain/bert_aseg.nii.gz'));
    const a = reorientToCanonical(img);
    const b = reorientToCanonical(lab);
    expect(b.affine).toEqual(a.affine);
    expect(b.data).toBeInstanceOf(Int32Array);
  });

  it.skipIf(!hasPython)('agrees with nibabel as_closest_canonical (LPS abdominal MR)', async () => {
    const f = shared('abdomen/example_mr_sm.nii.gz');
    const v = await readNifti(f);
    const ras = reorientToCanonical(v);
    const out = path.join(tmp.dir, 'mr_ras.nii.gz');
    await writeNifti(out, ras);
    const r = runPython<{ same: boolean; affine: number[]; shape: number[] }>(
      `import nibabel as nib, numpy as np, json, sys
ref = nib.as_closest_canonical(nib.load(sys.argv[1])); ours = nib.load(sys.argv[2])
print(json.dumps({"same": bool(np.array_equal(np.asarray(ref.dataobj), np.asarray(ours.dataobj))), "affine": ref.affine.reshape(-1).tolist(), "shape": list(ref.shape)}))`,
      [f, out],
    );
    expect(r.shape).toEqual(ras.dims);
    expect(r.same).toBe(true);
    r.affine.forEach((a, i) => expect(ras.affine[i]).toBeCloseTo(a, 3));
  });
});
