import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { axisCodes, makeVolume, readPreparedVolume, voxelToWorld, worldToVoxel, writeNifti } from '@llmed/imaging';
import { centerPadCrop, extractBox, m3dPreprocess, merlinPreprocess, prepareCT } from '@llmed/reports';

/** An LPS volume (the DICOM orientation, as ITK writes it) of −1000 HU with a +1000 HU marker block. */
function lpsVolumeWithMarker() {
  const dims = [20, 16, 12];
  // i → left (x−), j → posterior (y−), k → superior; 2 × 2 × 3 mm; origin chosen so the centre is near 0.
  const affine = [-2, 0, 0, 19, 0, -2, 0, 15, 0, 0, 3, -16.5, 0, 0, 0, 1];
  const data = new Float32Array(dims[0] * dims[1] * dims[2]).fill(-1000);
  // Marker at voxels i 2..3, j 2..3, k 8..9: low i = patient right, low j = anterior, high k = superior.
  for (let k = 8; k <= 9; k++) for (let j = 2; j <= 3; j++) for (let i = 2; i <= 3; i++) data[i + dims[0] * (j + dims[1] * k)] = 1000;
  const vol = makeVolume(data, dims, { affine });
  const markerWorld = voxelToWorld(affine, 2.5, 2.5, 8.5);
  return { vol, markerWorld };
}

function argmaxCentroid(data: Float32Array, dims: readonly number[], threshold: number): [number, number, number] {
  const s = [0, 0, 0];
  let n = 0;
  for (let q = 0; q < data.length; q++) if (data[q] >= threshold) {
    s[0] += q % dims[0]; s[1] += Math.floor(q / dims[0]) % dims[1]; s[2] += Math.floor(q / (dims[0] * dims[1])); n++;
  }
  expect(n).toBeGreaterThan(0);
  return [s[0] / n, s[1] / n, s[2] / n];
}

describe('Merlin preprocessing', () => {
  const { vol, markerWorld } = lpsVolumeWithMarker();
  expect(axisCodes(vol.affine)).toBe('LPS');
  const shape: [number, number, number] = [32, 28, 16];
  const p = merlinPreprocess(vol, { shape });

  it('is RAS at 1.5 × 1.5 × 3 mm and the requested shape', () => {
    expect(axisCodes(p.volume.affine)).toBe('RAS');
    expect(p.volume.dims).toEqual(shape);
    p.volume.spacing.forEach((s, a) => expect(Math.abs(s - [1.5, 1.5, 3][a])).toBeLessThan(0.1));
    expect(p.tensorShape).toEqual([1, ...shape]);
  });

  it('puts the marker where it is in the world: right, anterior, superior', () => {
    const c = argmaxCentroid(p.volume.data, p.volume.dims, 0.75);
    const w = voxelToWorld(p.volume.affine, c[0], c[1], c[2]);
    for (let a = 0; a < 3; a++) expect(Math.abs(w[a] - markerWorld[a])).toBeLessThan(1.6);
    // The marker is at world x > 0 (right), y > 0 (anterior), z > 0 (superior) of the scan centre: in RAS
    // voxel order it lands in the upper half of every axis of the (centred) output grid.
    const centre = voxelToWorld(vol.affine, 9.5, 7.5, 5.5);
    expect(markerWorld[0] - centre[0]).toBeGreaterThan(0);
    expect(markerWorld[1] - centre[1]).toBeGreaterThan(0);
    expect(markerWorld[2] - centre[2]).toBeGreaterThan(0);
    for (let a = 0; a < 3; a++) expect(c[a]).toBeGreaterThan(shape[a] / 2);
  });

  it('maps −1000..1000 HU to [0, 1], pads with 0, and writes the tensor in (X, Y, Z) C order', () => {
    let min = Infinity, max = -Infinity;
    for (const v of p.volume.data) { min = Math.min(min, v); max = Math.max(max, v); }
    expect(min).toBe(0);
    expect(max).toBeCloseTo(1, 6);
    expect(p.volume.data[0]).toBe(0); // a padded corner
    const [X, Y, Z] = shape;
    for (const [x, y, z] of [[3, 5, 7], [20, 1, 15], [31, 27, 0]]) {
      expect(p.tensor[z + Z * (y + Y * x)]).toBe(p.volume.data[x + X * (y + Y * z)]);
    }
  });

  it('rejects a 2-D image naming it', () => {
    expect(() => merlinPreprocess(makeVolume(new Float32Array(4), [2, 2, 1]), {}, 'flat.nii.gz')).toThrow(/flat\.nii\.gz|one voxel/);
  });
});

describe('M3D preprocessing', () => {
  // A ramp along the file's X axis (i) in an LPS volume: M3D keeps the file's voxel order, (X,Y,Z) → (Z,X,Y).
  const dims = [10, 14, 6];
  const data = new Float32Array(dims[0] * dims[1] * dims[2]);
  for (let k = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++) data[i + dims[0] * (j + dims[1] * k)] = 100 + 7 * i;
  const vol = makeVolume(data, dims, { affine: [-0.8, 0, 0, 0, 0, -0.8, 0, 0, 0, 0, 5, 0, 0, 0, 0, 1] });
  const [D, H, W] = [4, 8, 9];
  const p = m3dPreprocess(vol, { shape: [D, H, W] });

  it('min–max normalises and resamples to (D, H, W) = (Z, X, Y) with align corners', () => {
    expect(p.tensorShape).toEqual([1, D, H, W]);
    // The ramp along X must run along H: value = h / (H − 1), independent of d and w.
    for (let d = 0; d < D; d++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) {
      expect(p.tensor[w + W * (h + H * d)]).toBeCloseTo(h / (H - 1), 5);
    }
  });

  it('sends a marker at a file corner to the matching tensor corner, and keeps world positions in the affine', () => {
    const m = new Float32Array(data.length);
    m[9 + dims[0] * (0 + dims[1] * 5)] = 1; // i = 9 (last X), j = 0 (first Y), k = 5 (last Z)
    const q = m3dPreprocess(makeVolume(m, dims, { affine: vol.affine }), { shape: [D, H, W] });
    let best = 0;
    for (let n = 1; n < q.tensor.length; n++) if (q.tensor[n] > q.tensor[best]) best = n;
    expect(best).toBe(0 + W * ((H - 1) + H * (D - 1))); // d = D−1, h = H−1, w = 0
    expect(q.tensor[best]).toBe(1);
    const world = voxelToWorld(q.volume.affine, 0, H - 1, D - 1);
    const back = worldToVoxel(vol.affine, world[0], world[1], world[2]);
    [9, 0, 5].forEach((v, a) => expect(back[a]).toBeCloseTo(v, 6));
  });

  it('can reorient first (M3D itself does not)', () => {
    const r = m3dPreprocess(vol, { shape: [D, H, W], orientation: 'RAS' });
    // In RAS the ramp (increasing towards the left) runs the other way along H.
    expect(r.tensor[0 + W * (0 + H * 0)]).toBeCloseTo(1, 5);
    expect(r.steps[0]).toBe('reorient RAS');
  });
});

describe('extractBox / centerPadCrop', () => {
  it('crops and pads keeping world positions', () => {
    const v = makeVolume(Float32Array.from({ length: 24 }, (_, n) => n + 1), [4, 3, 2], { spacing: [2, 3, 4] });
    const b = extractBox(v, [-1, 1, 0], [3, 3, 2], -5);
    expect(b.dims).toEqual([3, 3, 2]);
    expect(b.data[0]).toBe(-5);
    expect(b.data[1]).toBe(v.data[0 + 4 * 1]);
    expect(voxelToWorld(b.affine, 1, 0, 0)).toEqual(voxelToWorld(v.affine, 0, 1, 0));
    expect(b.data[3 * 3 * 2 - 1]).toBe(-5); // j = 1 + 2 = 3 is outside
    // MONAI's centre crop of 5 → 2 starts at ⌊5/2⌋ − ⌊2/2⌋ = 1; symmetric pad of 3 → 6 puts ⌊3/2⌋ = 1 before.
    const c = centerPadCrop(makeVolume(Float32Array.from({ length: 15 }, (_, n) => n), [5, 3, 1]), [2, 6, 1], 9);
    expect(Array.from(c.data)).toEqual([9, 9, 1, 2, 6, 7, 11, 12, 9, 9, 9, 9]);
  });
});

describe('prepareCT (preprocess once, cached)', () => {
  it('writes the tensor in the prepared cache and reads it back while file and settings are unchanged', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'llmed-prepare-ct-'));
    try {
      const { vol } = lpsVolumeWithMarker();
      const file = path.join(dir, 'ct.nii.gz');
      await writeNifti(file, vol, { datatype: 'int16' });
      const pipeline = { name: 'merlin' as const, options: { shape: [32, 28, 16] as [number, number, number] } };
      const first = await prepareCT(file, pipeline, path.join(dir, 'cache'));
      expect(first.cached).toBe(false);
      expect(first.header.shape).toEqual([1, 32, 28, 16]); // (C, X, Y, Z): Merlin's input order
      const again = await prepareCT(file, pipeline, path.join(dir, 'cache'));
      expect(again.cached).toBe(true);
      const other = await prepareCT(file, { name: 'm3d', options: { shape: [4, 8, 8] } }, path.join(dir, 'cache'));
      expect(other.cached).toBe(false);
      expect(other.header.shape).toEqual([1, 4, 8, 8]);
      const back = await readPreparedVolume(first.dir, first.name);
      expect(Array.from(back.volume.data)).toEqual(Array.from(merlinPreprocess(vol, pipeline.options).tensor));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
