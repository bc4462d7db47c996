/**
 * The proxies' smooth random displacement fields, made by @llmed/imaging `smoothRandomField` — the one
 * implementation, the same one `llmed data prepare` uses for the demo's synthetic deformations — and handed
 * to bench/proxies/proxies.py as raw files (volumes cross languages through files, never as arrays).
 *
 *   tsx bench/proxies/random-fields.ts <job.json>
 *
 * job.json: {"dims": [nx, ny, nz], "fields": [{"maxDisplacement": v, "smoothness": s, "seed": n, "file": path}, ...]}.
 * Each field is written as float32 little-endian, component-major (3, nz, ny, nx), in voxels; relative paths
 * are taken from job.json's folder.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { smoothRandomField } from '@llmed/imaging';

interface Job { dims: [number, number, number]; fields: { maxDisplacement: number; smoothness: number; seed: number; file: string }[] }

const jobFile = process.argv[2];
if (!jobFile) {
  console.error('usage: tsx bench/proxies/random-fields.ts <job.json>');
  process.exit(2);
}
const job = JSON.parse(readFileSync(jobFile, 'utf8')) as Job;
for (const f of job.fields) {
  const field = smoothRandomField(job.dims, { maxDisplacement: f.maxDisplacement, smoothness: f.smoothness, seed: f.seed });
  const bytes = Buffer.from(field.buffer, field.byteOffset, field.byteLength);
  // Float32Array uses the platform's byte order; the file is little-endian on every platform.
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) bytes.swap32();
  writeFileSync(resolve(dirname(jobFile), f.file), bytes);
}
