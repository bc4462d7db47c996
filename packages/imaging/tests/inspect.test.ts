import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatInspect, inspectVolume, makeVolume, writeNifti } from '../src/index.ts';
import { hasMricron, hasShared, makeTmp, mricron, shared } from './helpers.ts';

const tmp = makeTmp();
afterAll(() => tmp.cleanup());

describe.skipIf(!hasMricron)('inspectVolume on templates', () => {
  it('AAL: a label map with 116 regions', async () => {
    const r = await inspectVolume(mricron('aal.nii.gz'));
    expect(r).toMatchObject({ format: 'NIfTI-1', datatype: 'uint8', dims: [181, 217, 181], components: 1, orientation: 'RAS', intent: 'LABEL', affineSource: 'sform' });
    expect(r.labels).toHaveLength(117);
    expect(r.intensity.min).toBe(0);
    expect(r.intensity.nonFinite).toBe(0);
    const text = formatInspect(r);
    expect(text).toContain('aal.nii.gz');
    expect(text).toContain('181 x 217 x 181');
    expect(text).toContain('orientation  RAS');
    expect(text).toMatch(/labels\s+117 distinct: 0 1 2 3/);
  });

  it('ch2: intensity statistics (p1 <= mean-ish <= p99)', async () => {
    const r = await inspectVolume(mricron('ch2.nii.gz'));
    expect(r.intensity.p1).toBeLessThanOrEqual(r.intensity.p99);
    expect(r.intensity.min).toBeLessThanOrEqual(r.intensity.p1);
    expect(r.intensity.max).toBeGreaterThanOrEqual(r.intensity.p99);
  });
});

describe.skipIf(!hasShared)('inspectVolume on real scans', () => {
  it('bert_t1: LIA, 256^3', async () => {
    const r = await inspectVolume(shared('brain/bert_t1.nii.gz'));
    expect(r.orientation).toBe('LIA');
    expect(r.dims).toEqual([256, 256, 256]);
  });

  it('a float T1 has no label list', async () => {
    const r = await inspectVolume(shared('brain/vxm_subject_t1.nii.gz'));
    expect(r.datatype).toBe('float32');
    expect(r.labels).toBeUndefined();
  });
});

describe('inspectVolume reports NaN/Inf', () => {
  it('counts non-finite voxels and says so in the text', async () => {
    const data = new Float32Array(1000).map((_, i) => i / 10);
    data[5] = NaN;
    data[6] = -Infinity;
    const f = path.join(tmp.dir, 'nan.nii.gz');
    await writeNifti(f, makeVolume(data, [10, 10, 10]));
    const r = await inspectVolume(f);
    expect(r.intensity.nonFinite).toBe(2);
    expect(Number.isFinite(r.intensity.mean)).toBe(true);
    expect(r.labels).toBeUndefined();
    expect(formatInspect(r)).toMatch(/non-finite\s+2/);
  });
});
