import { describe, expect, it } from 'vitest';
import { assertSameGeometry, geometryDifferences, makeVolume, readNifti, sameGeometry } from '../src/index.ts';
import { expectLlmedError, hasMricron, hasShared, mricron, shared } from './helpers.ts';

describe('geometry comparison', () => {
  const a = makeVolume(new Float32Array(24), [2, 3, 4], { spacing: [1, 1, 1] });

  it('equal grids match within float32 header precision', () => {
    const b = makeVolume(new Float32Array(24), [2, 3, 4], { affine: [1 + 1e-6, 0, 0, 1e-5, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] });
    expect(sameGeometry(a, b)).toBe(true);
  });

  it('reports dims, spacing and affine differences', () => {
    const b = makeVolume(new Float32Array(24), [4, 3, 2], { affine: [-2, 0, 0, 5, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] });
    const d = geometryDifferences(a, b);
    expect(d[0]).toBe('dims 2x3x4 vs 4x3x2');
    expect(d[1]).toMatch(/spacing \[1, 1, 1\] vs \[2, 1, 1\] mm/);
    expect(d[2]).toMatch(/affine differs by up to 5.*orientation RAS vs LAS.*origin/);
  });

  it('assertSameGeometry names both files', async () => {
    const b = makeVolume(new Float32Array(24), [2, 3, 4], { spacing: [1, 1, 2] });
    await expectLlmedError(() => assertSameGeometry(a, b, ['moving.nii.gz', 'moving_seg.nii.gz']), 'data', ['moving.nii.gz', 'moving_seg.nii.gz', /spacing/]);
  });
});

describe.skipIf(!hasShared)('geometry of real image/label pairs', () => {
  it('bert_t1 and bert_aseg share a grid', async () => {
    const img = await readNifti(shared('brain/bert_t1.nii.gz'));
    const seg = await readNifti(shared('brain/bert_aseg.nii.gz'));
    expect(() => assertSameGeometry(img, seg, ['bert_t1', 'bert_aseg'])).not.toThrow();
  });

  it('image_A and its seg (odd zooms in the header) are a mismatched pair: clear error', async () => {
    const fi = shared('brain/image_A_160x192x144.nii.gz');
    const fs = shared('brain/image_A_160x192x144_seg.nii.gz');
    const img = await readNifti(fi);
    const seg = await readNifti(fs);
    expect(sameGeometry(img, seg)).toBe(false);
    await expectLlmedError(() => assertSameGeometry(img, seg, [fi, fs]), 'data', [fi, fs, /spacing \[1, 1, 1\] vs \[0.9812, 0.9688, 1\] mm/, /origin \[0, 0, 0\] vs \[3, 6, 0\] mm/]);
  });
});

describe.skipIf(!hasMricron)('templates on the same grid', () => {
  it('ch2 and aal match; ch2 and the 2 mm JHU atlas do not', async () => {
    const ch2 = await readNifti(mricron('ch2.nii.gz'));
    const aal = await readNifti(mricron('aal.nii.gz'));
    expect(sameGeometry(ch2, aal)).toBe(true);
    const jhu = await readNifti(mricron('JHU-WhiteMatter-labels-2mm.nii.gz'));
    expect(geometryDifferences(ch2, jhu).join('; ')).toMatch(/dims 181x217x181 vs 91x109x91/);
  });
});
