/**
 * Benchmark (not a test): HD95 over the 30 FreeSurfer evaluation labels on a real 160×192×224 aseg pair
 * (brain/vxm_subject_aseg vs a copy warped by a smooth random field), llmed's TypeScript against scipy
 * in the same run, same inputs, answers compared.
 *
 * scipy is timed two ways, both inside Python (interpreter start and file reading excluded):
 *   - "scipy full volume": the usual medpy-style code, binary_erosion + distance_transform_edt on the whole
 *     volume for every label;
 *   - "scipy cropped": the same restricted to each label's bounding box (what llmed does), the fair
 *     algorithmic comparison.
 * Writes bench/results/metrics-hd95.json. Run: `node --import tsx bench/metrics/hd95.ts [--runs N]`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pluginOptions, writeFileAtomic } from '@llmed/core';
import { readLabelMap, smoothRandomField, upsampleField, type Vec3, warpNearest } from '@llmed/imaging';
import { descriptor as hd95Descriptor, hd95 } from '@llmed/plugin-hd95';
import { l2rHd95 } from '@llmed/plugin-l2r-hd95';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sharedData = process.env.LLMED_SHARED_DATA ?? path.resolve(repoRoot, '../shared/data');
const python = path.join(repoRoot, '.venv/bin/python');
const refScript = path.join(repoRoot, 'bridge/python/llmed/metrics_ref.py');
const LABELS = [2, 3, 4, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 28, 31, 41, 42, 43, 46, 47, 49, 50, 51, 52, 53, 54, 60, 63];

const runsArg = process.argv.indexOf('--runs');
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function main(): Promise<void> {
  const asegFile = path.join(sharedData, 'brain/vxm_subject_aseg.nii.gz');
  if (!existsSync(asegFile)) { console.error(`bench/metrics/hd95: ${asegFile} not found (set LLMED_SHARED_DATA)`); process.exit(2); }
  if (!existsSync(python)) { console.error(`bench/metrics/hd95: ${python} not found: the scipy side cannot run`); process.exit(2); }
  const loadAtStart = os.loadavg()[0];

  const aseg = await readLabelMap(asegFile);
  const dims = aseg.dims;
  const coarse: Vec3 = [Math.ceil(dims[0] / 4), Math.ceil(dims[1] / 4), Math.ceil(dims[2] / 4)];
  const field = upsampleField(smoothRandomField(coarse, { maxDisplacement: 1, smoothness: 2, seed: 7 }), coarse, dims);
  const warped = warpNearest(aseg.data, dims, field, dims);

  // llmed: a warm-up run, then `runs` timed runs.
  let ours = hd95(aseg.data, warped, dims, aseg.spacing, LABELS);
  const oursMs: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    ours = hd95(aseg.data, warped, dims, aseg.spacing, LABELS);
    oursMs.push(performance.now() - t);
  }
  const l2rMs: number[] = [];
  for (let r = 0; r < runs; r++) { const t = performance.now(); l2rHd95(aseg.data, warped, dims, LABELS); l2rMs.push(performance.now() - t); }

  // scipy: same inputs through raw files; cropped `runs` times, full volume fewer (it is slow).
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'llmed-bench-hd95-'));
  try {
    const fixedFile = path.join(tmp, 'fixed.i32'), warpedFile = path.join(tmp, 'warped.i32');
    writeFileSync(fixedFile, new Uint8Array(aseg.data.buffer, aseg.data.byteOffset, aseg.data.byteLength));
    writeFileSync(warpedFile, new Uint8Array(warped.buffer, warped.byteOffset, warped.byteLength));
    // the hd95 plugin's scipy reference (plugins/hd95/python), run through metrics_ref.py's command line
    const shape = [dims[2], dims[1], dims[0]];
    const base = {
      python: hd95Descriptor.python, options: pluginOptions(hd95Descriptor, { labels: LABELS }, 'hd95'),
      inputs: { fixedLabels: { raw: fixedFile, dtype: 'int32', shape }, warpedLabels: { raw: warpedFile, dtype: 'int32', shape }, spacing: aseg.spacing },
    };
    const fullRuns = Math.max(1, Math.min(runs, 2));
    const requests = [...Array(runs).fill({ ...base, kwargs: { crop: true } }), ...Array(fullRuns).fill({ ...base, kwargs: { crop: false } })];
    const reqFile = path.join(tmp, 'req.json');
    writeFileSync(reqFile, JSON.stringify(requests));
    const answers = (JSON.parse(execFileSync(python, [refScript, reqFile], { encoding: 'utf8', maxBuffer: 64 << 20 }).trim().split('\n').pop()!) as Array<Record<string, number | null>>)
      .map((a) => ({
        perLabel: Object.fromEntries(Object.entries(a).filter(([k]) => k.startsWith('perLabel.')).map(([k, v]) => [k.slice('perLabel.'.length), v])),
        mean: a.value as number, seconds: a.seconds as number,
      }));
    const cropped = answers.slice(0, runs), full = answers.slice(runs);

    let maxAbsDiff = 0;
    for (const a of answers) for (const [label, v] of Object.entries(ours.perLabel)) {
      const r = a.perLabel[label];
      if (r === null) { if (!Number.isNaN(v)) maxAbsDiff = Infinity; } else maxAbsDiff = Math.max(maxAbsDiff, Math.abs(v - r));
    }

    const oursMedian = median(oursMs);
    const croppedMedian = median(cropped.map((a) => a.seconds * 1000));
    const fullMedian = median(full.map((a) => a.seconds * 1000));
    const result = {
      benchmark: 'HD95 (mm, pooled symmetric p95), 30 aseg labels, 160x192x224',
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model.trim(), node: process.version, platform: `${os.platform()} ${os.arch()}`, loadAverage1mAtStart: round(loadAtStart, 2) },
      input: { fixed: path.relative(repoRoot, asegFile), warped: 'fixed warped (nearest) by smoothRandomField(seed 7) upsampled from 1/4', dims, spacing: aseg.spacing, labels: LABELS.length },
      runs,
      llmed: { hd95MedianMs: round(oursMedian), hd95RunsMs: oursMs.map((x) => round(x)), l2rHd95MedianMs: round(median(l2rMs)), meanHd95Mm: ours.mean },
      scipy: {
        croppedMedianMs: round(croppedMedian), croppedRunsMs: cropped.map((a) => round(a.seconds * 1000)),
        fullVolumeMedianMs: round(fullMedian), fullVolumeRunsMs: full.map((a) => round(a.seconds * 1000)),
        meanHd95Mm: cropped[0].mean,
      },
      agreement: { maxAbsDiffMm: maxAbsDiff },
      ratio: {
        'scipy cropped / llmed': round(croppedMedian / oursMedian, 2),
        'scipy full volume / llmed': round(fullMedian / oursMedian, 2),
      },
      notes: 'Single-threaded on both sides. Times exclude reading the NIfTI and starting Python. >1 means llmed is faster. The machine is shared: loadAverage1mAtStart says how busy it was.',
    };
    const outFile = path.join(repoRoot, 'bench/results/metrics-hd95.json');
    mkdirSync(path.dirname(outFile), { recursive: true });
    await writeFileAtomic(outFile, JSON.stringify(result, null, 2) + '\n');
    console.log(`HD95 30 labels: llmed ${round(oursMedian)} ms, scipy cropped ${round(croppedMedian)} ms (×${result.ratio['scipy cropped / llmed']}), scipy full volume ${round(fullMedian)} ms (×${result.ratio['scipy full volume / llmed']}); max |diff| ${maxAbsDiff} mm → ${path.relative(repoRoot, outFile)}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
