/**
 * Hostile .nii.gz files (made here, from a 16³ image written by llmed's own writer): memory stays within a
 * small multiple of what the header needs, whatever the gzip stream holds.
 *
 * - a 16³ float32 image followed by 256 MiB of zeros (concatenated gzip members: a few hundred kB on disk)
 *   is read without inflating the zeros;
 * - a header declaring more than the limit, over a long stream of zeros, is refused without keeping what
 *   it inflated;
 * - a rank-deficient sform (columns of non-zero length, determinant 0) is refused instead of passing as RAS.
 *
 * Memory is measured in a child process (its peak RSS before and after the read), so other tests in this
 * worker do not blur it.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeVolume, readNifti, readNiftiSync, writeNifti } from '../src/index.ts';
import { expectLlmedError, makeTmp } from './helpers.ts';

const tmp = makeTmp();
afterAll(() => tmp.cleanup());
const t = (f: string) => path.join(tmp.dir, f);
const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'index.ts');
const MiB = 2 ** 20;

let image: Buffer; // an uncompressed 16³ float32 .nii (352-byte header + 16 kB)
const values = Float32Array.from({ length: 16 ** 3 }, (_, i) => (i % 97) / 7);

/** `bytes` followed by `zerosMiB` MiB of zeros, as concatenated gzip members (each 1 MiB of zeros). */
function withTrailingZeros(bytes: Buffer, zerosMiB: number): Buffer {
  const zeros = gzipSync(Buffer.alloc(MiB), { level: 9 });
  return Buffer.concat([gzipSync(bytes), ...Array.from({ length: zerosMiB }, () => zeros)]);
}

/** Read `file` in a fresh Node process; returns the peak RSS growth of the read (MiB) and what it gave. */
function readInChild(file: string, how: 'async' | 'sync', maxBytes?: number): { rssGrowthMiB: number; ok: boolean; message?: string; dims?: number[]; sum?: number } {
  const script = `
    const { readNifti, readNiftiSync } = await import(${JSON.stringify(SRC)});
    const before = process.resourceUsage().maxRSS;
    let out;
    try {
      const v = ${how === 'async' ? 'await readNifti' : 'readNiftiSync'}(${JSON.stringify(file)}, ${JSON.stringify(maxBytes ? { maxBytes } : {})});
      out = { ok: true, dims: v.dims, sum: v.data.reduce((a, b) => a + b, 0) };
    } catch (e) { out = { ok: false, message: e.message }; }
    out.rssGrowthMiB = (process.resourceUsage().maxRSS - before) / 1024;
    console.log(JSON.stringify(out));`;
  const scriptFile = t(`read-${how}-${path.basename(file)}.mts`);
  writeFileSync(scriptFile, script);
  const r = spawnSync(process.execPath, ['--import', 'tsx', scriptFile], { encoding: 'utf8', timeout: 120_000, cwd: path.dirname(SRC) });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

beforeAll(async () => {
  await writeNifti(t('small.nii'), makeVolume(values, [16, 16, 16], { datatype: 'float32' }));
  image = readFileSync(t('small.nii'));
});

describe('gzip streams that hold more than the header needs', () => {
  it('a 16³ image followed by 256 MiB of zeros is read without inflating the zeros', () => {
    const f = t('trailing.nii.gz');
    writeFileSync(f, withTrailingZeros(image, 256));
    const expectedSum = values.reduce((a, b) => a + b, 0);
    for (const how of ['async', 'sync'] as const) {
      const r = readInChild(f, how);
      expect(r.ok, r.message).toBe(true);
      expect(r.dims).toEqual([16, 16, 16]);
      expect(r.sum).toBeCloseTo(expectedSum, 1);
      // The header needs 16 kB; inflating the stream would cost 256 MiB.
      expect(r.rssGrowthMiB, `${how} read grew the peak RSS by ${r.rssGrowthMiB.toFixed(1)} MiB`).toBeLessThan(48);
    }
  });

  it('a header declaring more than the limit is refused without keeping what the stream inflates', async () => {
    const claims = Buffer.from(image);
    claims.writeInt16LE(512, 42); claims.writeInt16LE(512, 44); claims.writeInt16LE(512, 46); // 512³ float32 = 512 MiB
    const f = t('bomb.nii.gz');
    writeFileSync(f, withTrailingZeros(claims, 200));
    for (const how of ['async', 'sync'] as const) {
      const r = readInChild(f, how, 64 * MiB);
      expect(r.ok).toBe(false);
      expect(r.message).toMatch(/512x512x512 float32 voxels \(512\.0 MiB\)/);
      expect(r.message).toMatch(/inflates to more than 64\.0 MiB \(limit\)/);
      expect(r.rssGrowthMiB, `${how}: ${r.rssGrowthMiB.toFixed(1)} MiB`).toBeLessThan(48);
    }
    // Under the limit but more than the stream holds: the file is short, said as such.
    await expectLlmedError(() => readNifti(f, { maxBytes: 1024 * MiB }), 'nifti', [f, /512x512x512 float32/, /holds only 200\.0 MiB/]);
  }, 120_000);

  it('the image at the end of the stream is byte for byte the one written', async () => {
    const f = t('exact.nii.gz');
    writeFileSync(f, withTrailingZeros(image, 2));
    const a = await readNifti(f);
    const b = readNiftiSync(f);
    expect(Array.from(a.data)).toEqual(Array.from(values));
    expect(Array.from(b.data)).toEqual(Array.from(values));
  });
});

describe('affines that give no orientation', () => {
  it('a rank-2 sform (no zero column, determinant 0) is refused', async () => {
    const raw = Buffer.from(image);
    // srow_x, srow_y, srow_z at 280: column 3 = column 1 + column 2 (all columns non-zero)
    const srow = [1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0];
    srow.forEach((v, i) => raw.writeFloatLE(v, 280 + 4 * i));
    raw.writeInt16LE(1, 254); // sform_code
    const f = t('rank2.nii.gz');
    writeFileSync(f, gzipSync(raw));
    await expectLlmedError(() => readNifti(f), 'nifti', [f, /sform affine is singular: its voxel axes are linearly dependent/]);
  });
});
