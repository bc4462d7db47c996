/**
 * Cross-check of the M3D pipeline against the reference steps in Python (spec §3.6, version 1): nibabel
 * load → global min–max → numpy transpose (X, Y, Z) → (Z, X, Y) → torch F.interpolate trilinear,
 * align_corners=True → channel. Skipped without the project's venv (torch, nibabel).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { makeVolume, readNifti, writeNifti } from '@llmed/imaging';
import { m3dPreprocess } from '@llmed/reports';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const PY = path.join(root, '.venv/bin/python');
const hasTorch = existsSync(PY) && (() => { try { execFileSync(PY, ['-c', 'import torch, nibabel'], { stdio: 'ignore' }); return true; } catch { return false; } })();
if (!hasTorch) console.warn(`[reports tests] ${PY} with torch + nibabel not found: the M3D torch cross-check is SKIPPED`);

const tmp = mkdtempSync(path.join(tmpdir(), 'llmed-m3d-torch-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SCRIPT = `
import json, sys, nibabel as nib, numpy as np, torch, torch.nn.functional as F
img = nib.load(sys.argv[1]).get_fdata().astype(np.float32)
img = (img - img.min()) / (img.max() - img.min())
img = np.transpose(img, (2, 0, 1))
t = F.interpolate(torch.from_numpy(img)[None, None], size=(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])), mode="trilinear", align_corners=True)[0]
np.save(sys.argv[5], t.numpy().astype(np.float32))
print(json.dumps(list(t.shape)))
`;

describe.skipIf(!hasTorch)('M3D preprocessing matches the reference (nibabel + torch)', () => {
  it('gives the same (1, D, H, W) tensor, value for value', async () => {
    const dims = [13, 11, 7];
    const data = Float32Array.from({ length: dims[0] * dims[1] * dims[2] }, (_, n) => Math.round(800 * Math.sin(1.7 * n + 0.3)));
    const file = path.join(tmp, 'ct.nii.gz');
    // A non-RAS header: M3D ignores it (array order), which is what this checks.
    await writeNifti(file, makeVolume(data, dims, { affine: [0, -0.7, 0, 10, -0.7, 0, 0, 5, 0, 0, 5, -20, 0, 0, 0, 1] }), { datatype: 'int16' });
    const [D, H, W] = [5, 9, 8];
    const npy = path.join(tmp, 'ref.npy');
    const shape = JSON.parse(execFileSync(PY, ['-c', SCRIPT, file, String(D), String(H), String(W), npy], { encoding: 'utf8' }).trim().split('\n').pop()!);
    expect(shape).toEqual([1, D, H, W]);
    const bytes = readFileSync(npy);
    const headerLen = bytes.readUInt16LE(8);
    const ref = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 10 + headerLen, bytes.byteOffset + bytes.byteLength));
    const ours = m3dPreprocess(await readNifti(file), { shape: [D, H, W] });
    expect(ours.tensorShape).toEqual([1, D, H, W]);
    expect(ref.length).toBe(ours.tensor.length);
    let maxDiff = 0;
    for (let n = 0; n < ref.length; n++) maxDiff = Math.max(maxDiff, Math.abs(ref[n] - ours.tensor[n]));
    expect(maxDiff).toBeLessThan(1e-5);
  });
});
