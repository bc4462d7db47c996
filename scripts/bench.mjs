#!/usr/bin/env node
// `npm run bench [-- name ...]`: runs the benchmarks in bench/ one after another (each compares itself
// against a reference in the same run and writes bench/results/<name>.json + .md). Names: the folders
// of bench/ (imaging, metrics, training, inference, text-decode); none = all of them. Benchmarks are never part of
// `npm test`: timings on a shared 2-core machine are measured and recorded, not asserted.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const BENCHES = {
  imaging: 'bench/imaging/read-reorient-resample.ts',
  metrics: 'bench/metrics/hd95.ts',
  training: 'bench/training/bridge-overhead.ts',
  'training-conv': 'bench/training/cpu-conv.ts',
  'training-memory': 'bench/training/memory.ts',
  inference: 'bench/inference/inference.ts',
  'text-decode': 'bench/text/decode.ts',
};
const asked = process.argv.slice(2);
for (const name of asked) {
  if (!(name in BENCHES)) {
    console.error(`error[usage] unknown benchmark '${name}'; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
}
let failed = 0;
for (const [name, file] of Object.entries(BENCHES)) {
  if (asked.length && !asked.includes(name)) continue;
  if (!existsSync(join(root, file))) { console.error(`[bench] ${name}: ${file} is missing`); failed++; continue; }
  console.log(`\n[bench] ${name}: ${file}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) { console.error(`[bench] ${name} failed (exit ${r.status})`); failed++; }
}
console.log(`\n[bench] results: ${readdirSync(join(root, 'bench', 'results')).filter((f) => f.endsWith('.md')).map((f) => `bench/results/${f}`).join(', ')}`);
process.exit(failed ? 1 : 0);
