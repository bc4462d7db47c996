import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  alignCornersCoordinate,
  boxAlignedAffine,
  makeVolume,
  readLabelMap,
  readNifti,
  reorientToCanonical,
  resampleOntoGrid,
  resampleToShape,
  resampleToSpacing,
  shapeForSpacing,
  uniqueLabels,
  voxelToWorld,
  writeNifti,
} from '../src/index.ts';
import { expectLlmedError, hasMricron, hasPython, hasShared, makeTmp, mricron, runPython, shared } from './helpers.ts';

const tmp = makeTmp();
afterAll(() => tmp.cleanup());

const ramp = (i: number, j: number, k: number) => 2 * i - 3 * j + 0.5 * k + 7;

describe('resampleToShape, analytic cases', () => {
  const dims: [number, number, number] = [9, 7, 6];
  const data = new Float32Array(9 * 7 * 6);
  for (let k = 0; k < 6; k++) for (let j = 0; j < 7; j++) for (let i = 0; i < 9; i++) data[i + 9 * (j + 7 * k)] = ramp(i, j, k);
  const affine = [1.5, 0, 0, -4, 0, 2, 0, 3, 0, 0, 2.5, 10, 0, 0, 0, 1];
  const vol = makeVolume(data, dims, { affine });

  it('a linear ramp stays exactly linear under trilinear up- and downsampling', () => {
    for (const shape of [[17, 13, 11], [5, 4, 3], [9, 20, 2]] as Array<[number, number, number]>) {
      const out = resampleToShape(vol, shape, 'linear');
      expect(out.dims).toEqual(shape);
      for (let k = 0; k < shape[2]; k++)
        for (let j = 0; j < shape[1]; j++)
          for (let i = 0; i < shape[0]; i++) {
            const x = alignCornersCoordinate(i, 9, shape[0]);
            const y = alignCornersCoordinate(j, 7, shape[1]);
            const z = alignCornersCoordinate(k, 6, shape[2]);
            expect(out.data[i + shape[0] * (j + shape[1] * k)]).toBeCloseTo(ramp(x, y, z), 4);
          }
    }
  });

  it('align corners: first and last voxel centres keep their world positions', () => {
    const out = resampleToShape(vol, [17, 13, 11], 'linear');
    expect(voxelToWorld(out.affine, 0, 0, 0)).toEqual(voxelToWorld(affine, 0, 0, 0));
    const a = voxelToWorld(out.affine, 16, 12, 10);
    const b = voxelToWorld(affine, 8, 6, 5);
    a.forEach((x, i) => expect(x).toBeCloseTo(b[i], 10));
    // the value at an output voxel is the ramp at the input voxel of the same world point
    expect(out.data[16 + 17 * (12 + 13 * 10)]).toBeCloseTo(ramp(8, 6, 5), 4);
    expect(out.spacing[0]).toBeCloseTo(1.5 * (8 / 16), 10);
  });

  it('identity shape returns the same values (and NaN does not leak to neighbours)', () => {
    const withNaN = makeVolume(Float32Array.from(data), dims, { affine });
    withNaN.data[100] = NaN;
    const out = resampleToShape(withNaN, dims, 'linear');
    expect(out.data).not.toBe(withNaN.data);
    expect(Number.isNaN(out.data[100])).toBe(true);
    for (let i = 0; i < data.length; i++) if (i !== 100) expect(out.data[i]).toBe(data[i]);
    expect(out.affine).toEqual(affine);
  });

  it('nearest keeps the label set and the array type', () => {
    const labels = new Int32Array(9 * 7 * 6).map((_, i) => [0, 4, 17, 42][i % 4]);
    const lv = makeVolume(labels, dims, { affine });
    const up = resampleToShape(lv, [20, 15, 12], 'nearest');
    expect(up.data).toBeInstanceOf(Int32Array);
    expect(uniqueLabels(up)).toEqual([0, 4, 17, 42]);
    const down = resampleToShape(lv, [4, 3, 3], 'nearest');
    for (const l of uniqueLabels(down)) expect([0, 4, 17, 42]).toContain(l);
  });

  it('voxel-unit displacement fields are rescaled with the grid (2x upsampling doubles them)', () => {
    const n = 9 * 7 * 6;
    const f = new Float32Array(3 * n);
    f.fill(1, 0, n);
    f.fill(-2, n, 2 * n);
    f.fill(0.5, 2 * n);
    const field = makeVolume(f, dims, { affine, components: 3 });
    const up = resampleToShape(field, [17, 13, 11], 'linear', { vectors: 'voxel' });
    const m = 17 * 13 * 11;
    expect(up.data[5]).toBeCloseTo(2, 6);
    expect(up.data[m + 5]).toBeCloseTo(-4, 6);
    expect(up.data[2 * m + 5]).toBeCloseTo(1, 6);
  });

  it('multi-component volumes are resampled per component', () => {
    const two = makeVolume(new Float32Array(2 * 9 * 7 * 6).map((_, i) => (i < 378 ? 1 : 5)), dims, { components: 2 });
    const out = resampleToShape(two, [4, 4, 4], 'linear');
    expect(out.components).toBe(2);
    expect(out.data[0]).toBe(1);
    expect(out.data[64]).toBe(5);
  });

  it('rejects bad shapes and modes', async () => {
    await expectLlmedError(() => resampleToShape(vol, [0, 3, 3], 'linear'), 'data', [/three positive integers/]);
    await expectLlmedError(() => resampleToShape(vol, [3, 3, 3], 'cubic' as never), 'data', [/unknown resampling mode 'cubic'/]);
    const slab = makeVolume(new Float32Array(9 * 7), [9, 7, 1]);
    await expectLlmedError(() => resampleToShape(slab, [9, 7, 4], 'linear'), 'data', [/single voxel/]);
  });
});

describe('resampleToSpacing', () => {
  it('computes the align-corners shape and reports the spacing achieved', () => {
    expect(shapeForSpacing([117, 91, 20], [3, 3, 3], [1.5, 1.5, 1.5])).toEqual([233, 181, 39]);
    const v = makeVolume(new Float32Array(117 * 91 * 20), [117, 91, 20], { spacing: [3, 3, 3] });
    const out = resampleToSpacing(v, [1.5, 1.5, 1.5]);
    expect(out.dims).toEqual([233, 181, 39]);
    out.spacing.forEach((s) => expect(s).toBeCloseTo(1.5, 10));
  });

  it('rejects non-positive spacing', async () => {
    const v = makeVolume(new Float32Array(8), [2, 2, 2]);
    await expectLlmedError(() => resampleToSpacing(v, [1, 0, 1]), 'data', [/positive numbers/]);
  });
});

describe.skipIf(!hasMricron)('resampling real volumes', () => {
  it('aal labels (116 regions) downsampled with nearest keep only existing labels, fast', async () => {
    const aal = await readLabelMap(mricron('aal.nii.gz'));
    const before = uniqueLabels(aal);
    expect(before.length).toBe(117); // 116 regions + background
    const t0 = performance.now();
    const small = resampleToShape(aal, [91, 109, 91], 'nearest');
    expect(performance.now() - t0).toBeLessThan(500);
    const after = uniqueLabels(small);
    for (const l of after) expect(before).toContain(l);
    expect(after.length).toBeGreaterThan(110);
  });

  it.skipIf(!hasPython)('trilinear matches scipy.ndimage.zoom(order=1) on ch2', async () => {
    const ch2 = await readNifti(mricron('ch2.nii.gz'));
    const shape: [number, number, number] = [96, 112, 80];
    const t0 = performance.now();
    const out = resampleToShape(ch2, shape, 'linear');
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(1000);
    const f = path.join(tmp.dir, 'ch2_small.nii');
    await writeNifti(f, out);
    const r = runPython<{ maxdiff: number; maxval: number }>(
      `import nibabel as nib, numpy as np, json, sys
from scipy import ndimage
src = np.asarray(nib.load(sys.argv[1]).dataobj).astype(np.float32)
ref = ndimage.zoom(src, [o / i for o, i in zip((96, 112, 80), src.shape)], order=1, grid_mode=False)
ours = np.asarray(nib.load(sys.argv[2]).dataobj)
print(json.dumps({"maxdiff": float(np.abs(ref - ours).max()), "maxval": float(np.abs(ref).max())}))`,
      [mricron('ch2.nii.gz'), f],
    );
    expect(r.maxval).toBeGreaterThan(100);
    expect(r.maxdiff).toBeLessThan(1e-3); // same convention: equal up to float32 rounding
  });
});

describe.skipIf(!hasShared)('resampling a real 3 mm abdomen scan', () => {
  it('MR 3 mm -> 1.5 mm keeps world extent', async () => {
    const mr = await readNifti(shared('abdomen/example_mr_sm.nii.gz'));
    const out = resampleToSpacing(mr, [1.5, 1.5, 1.5]);
    const last = (v: { dims: number[]; affine: number[] }) => voxelToWorld(v.affine, v.dims[0] - 1, v.dims[1] - 1, v.dims[2] - 1);
    last(out).forEach((x, i) => expect(x).toBeCloseTo(last(mr)[i], 3));
  });
});

describe('resampleOntoGrid: world-space resampling through both affines', () => {
  // a source in LPS with 0.8 mm voxels; a world-linear function is reproduced exactly by trilinear sampling
  const srcAffine = [-0.8, 0, 0, 6.1, 0, -0.8, 0, 5.3, 0, 0, 1.2, -4.4, 0, 0, 0, 1];
  const dims: [number, number, number] = [14, 13, 9];
  const world = (x: number, y: number, z: number) => 0.7 * x - 1.3 * y + 2.1 * z + 4;
  const data = new Float32Array(14 * 13 * 9);
  for (let k = 0, o = 0; k < 9; k++) for (let j = 0; j < 13; j++) for (let i = 0; i < 14; i++, o++) data[o] = world(...voxelToWorld(srcAffine, i, j, k));
  const src = makeVolume(data, dims, { affine: srcAffine });

  it('samples each target voxel at its world position (oblique target, values of a world-linear function)', () => {
    const c = Math.cos(0.3), s = Math.sin(0.3);
    const grid = { dims: [7, 6, 5], affine: [c, -s, 0, -2, s, c, 0, -1.5, 0, 0, 1, -1, 0, 0, 0, 1] };
    const out = resampleOntoGrid(src, grid, 'linear');
    expect(out.dims).toEqual([7, 6, 5]);
    expect(out.affine).toEqual(grid.affine);
    for (let k = 0, o = 0; k < 5; k++) for (let j = 0; j < 6; j++) for (let i = 0; i < 7; i++, o++) {
      expect(out.data[o]).toBeCloseTo(world(...voxelToWorld(grid.affine, i, j, k)), 3);
    }
  });

  it('a world-mm displacement moves the sampling point; outside the source gets the fill value', () => {
    const grid = { dims: [3, 3, 3], affine: [1, 0, 0, -1, 0, 1, 0, -1, 0, 0, 1, -1, 0, 0, 0, 1] };
    const u = new Float32Array(81);
    u.fill(0.5, 0, 27); // +0.5 mm along x
    u.fill(-0.25, 54, 81); // -0.25 mm along z
    const out = resampleOntoGrid(src, grid, 'linear', { displacementMm: u });
    for (let k = 0, o = 0; k < 3; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 3; i++, o++) {
      const [x, y, z] = voxelToWorld(grid.affine, i, j, k);
      expect(out.data[o]).toBeCloseTo(world(x + 0.5, y, z - 0.25), 3);
    }
    const far = resampleOntoGrid(src, { dims: [2, 1, 1], affine: [1, 0, 0, 100, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] }, 'linear', { outside: NaN });
    expect([...far.data].every(Number.isNaN)).toBe(true);
  });

  it('nearest keeps label values and the array type', () => {
    const labels = makeVolume(Int16Array.from(data, (v) => Math.round(v)), dims, { affine: srcAffine });
    const out = resampleOntoGrid(labels, { dims: [4, 4, 4], affine: [1, 0, 0, -2, 0, 1, 0, -2, 0, 0, 1, -2, 0, 0, 0, 1] }, 'nearest');
    expect(out.data).toBeInstanceOf(Int16Array);
    expect(new Set(out.data).size).toBeGreaterThan(1);
    for (const v of out.data) expect(labels.data).toContain(v);
  });

  it('boxAlignedAffine reproduces the box-to-box convention: reorient both, stretch box onto box', () => {
    const fixed = makeVolume(new Float32Array(10 * 8 * 6), [10, 8, 6], { affine: [1, 0, 0, 30, 0, 1, 0, -20, 0, 0, 1, 50, 0, 0, 0, 1] });
    const boxed = { ...src, affine: boxAlignedAffine(src, fixed, 'RAS') };
    const viaWorld = resampleOntoGrid(boxed, fixed, 'linear');
    const viaBoxes = resampleToShape(reorientToCanonical(src, 'RAS'), [10, 8, 6], 'linear');
    let maxDiff = 0;
    for (let q = 0; q < viaWorld.data.length; q++) maxDiff = Math.max(maxDiff, Math.abs(viaWorld.data[q] - viaBoxes.data[q]));
    expect(maxDiff).toBeLessThan(1e-4);
  });
});
