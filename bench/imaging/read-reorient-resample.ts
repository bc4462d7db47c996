/**
 * Benchmark (not a test): read a 192x208x176 float32 .nii.gz, reorient to RAS, resample to 160x192x144
 * trilinear (align corners) — llmed's TypeScript imaging vs nibabel + scipy.ndimage.zoom(order=1) in
 * the project's Python venv, in the same run on the same input. Reports the median of N runs of each
 * (after one warm-up run), the ratio, and the largest voxel difference between the two outputs.
 *
 *   npx tsx bench/imaging/read-reorient-resample.ts [runs=7]
 *
 * Input: FreeSurfer's "bert" T1 (256^3, LIA) from the shared data folder — or Colin27 (ch2, RAS) from
 * mricron-data when that is absent — resampled deterministically to 192x208x176 and written as float32
 * NIfTI-1 .nii.gz to a temp folder. Writes bench/results/imaging-read-reorient-resample.{json,md}.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { axisCodes, readNifti, reorientToCanonical, resampleToShape, writeNifti } from '../../packages/imaging/src/index.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const sharedData = process.env.LLMED_SHARED_DATA ?? path.resolve(repoRoot, '../shared/data');
const python = path.join(repoRoot, '.venv/bin/python');
const runs = Number(process.argv[2] ?? 7);
const INPUT_SHAPE: [number, number, number] = [192, 208, 176];
const OUTPUT_SHAPE: [number, number, number] = [160, 192, 144];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function makeInput(dir: string): Promise<{ file: string; source: string }> {
  const candidates = [path.join(sharedData, 'brain/bert_t1.nii.gz'), '/usr/share/mricron/templates/ch2.nii.gz'];
  const source = candidates.find((f) => existsSync(f));
  if (!source) throw new Error(`no source volume: none of ${candidates.join(', ')} exists`);
  const src = await readNifti(source);
  const vol = resampleToShape(src, INPUT_SHAPE, 'linear');
  const file = path.join(dir, 'bench_192x208x176.nii.gz');
  await writeNifti(file, vol, { datatype: 'float32', description: `bench input from ${path.basename(source)}` });
  return { file, source };
}

async function oursOnce(file: string) {
  const t0 = performance.now();
  const v = await readNifti(file);
  const t1 = performance.now();
  const ras = reorientToCanonical(v, 'RAS');
  const t2 = performance.now();
  const out = resampleToShape(ras, OUTPUT_SHAPE, 'linear');
  const t3 = performance.now();
  return { read: t1 - t0, reorient: t2 - t1, resample: t3 - t2, total: t3 - t0, rasDims: ras.dims, out, orientation: axisCodes(v.affine) };
}

async function main() {
  // Other work on the machine skews both pipelines alike; the 1-minute load average is recorded with the result.
  const loadAtStart = os.loadavg()[0];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'llmed-bench-'));
  try {
    const { file, source } = await makeInput(dir);
    console.log(`input ${file} (${(statSync(file).size / 1e6).toFixed(1)} MB gz) from ${source}`);

    // ours: one warm-up run (JIT), then `runs` timed runs
    let last = await oursOnce(file);
    const ours = { read: [] as number[], reorient: [] as number[], resample: [] as number[], total: [] as number[] };
    for (let r = 0; r < runs; r++) {
      last = await oursOnce(file);
      ours.read.push(last.read);
      ours.reorient.push(last.reorient);
      ours.resample.push(last.resample);
      ours.total.push(last.total);
    }
    console.log(`llmed  total median ${round(median(ours.total))} ms (read ${round(median(ours.read))}, reorient ${round(median(ours.reorient))}, resample ${round(median(ours.resample))})`);

    let ref: null | {
      read_reorient_ms: number[];
      resample_ms: number[];
      total_ms: number[];
      resample_contiguous_ms: number[];
      total_contiguous_ms: number[];
      shape_in_ras: number[];
      shape_out: number[];
      versions: Record<string, string>;
    } = null;
    let maxAbsDiff: number | null = null;
    let refNote = '';
    if (existsSync(python)) {
      const refOut = path.join(dir, 'ref.f32');
      const stdout = execFileSync(python, [path.join(here, 'ref_nibabel.py'), file, String(runs), refOut, ...OUTPUT_SHAPE.map(String)], { encoding: 'utf8' });
      ref = JSON.parse(stdout.trim().split('\n').pop()!);
      const buf = readFileSync(refOut);
      const refData = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
      maxAbsDiff = 0;
      for (let i = 0; i < refData.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(refData[i] - last.out.data[i]));
      console.log(`nibabel+scipy total median ${round(median(ref!.total_ms))} ms (read+reorient ${round(median(ref!.read_reorient_ms))}, resample ${round(median(ref!.resample_ms))})`);
      console.log(`nibabel+scipy, C-contiguous before zoom: total median ${round(median(ref!.total_contiguous_ms))} ms (resample incl. copy ${round(median(ref!.resample_contiguous_ms))})`);
    } else {
      refNote = `${python} not found: reference not run`;
      console.log(refNote);
    }

    const oursMedian = median(ours.total);
    const refMedian = ref ? median(ref.total_ms) : null;
    const refFastMedian = ref ? median(ref.total_contiguous_ms) : null;
    const result = {
      benchmark: 'imaging read -> reorient RAS -> resample trilinear',
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.platform()} ${os.arch()}`, loadAverage1mAtStart: round(loadAtStart, 2) },
      input: { source: path.relative(repoRoot, source).startsWith('..') ? source : path.relative(repoRoot, source), shape: INPUT_SHAPE, dtype: 'float32', orientation: last.orientation, gzBytes: statSync(file).size },
      rasShape: last.rasDims,
      outputShape: OUTPUT_SHAPE,
      runs,
      llmed: {
        medianMs: { total: round(oursMedian), read: round(median(ours.read)), reorient: round(median(ours.reorient)), resample: round(median(ours.resample)) },
        runsMs: ours.total.map((x) => round(x)),
      },
      nibabelScipy: ref
        ? {
            medianMs: { total: round(median(ref.total_ms)), readReorient: round(median(ref.read_reorient_ms)), resample: round(median(ref.resample_ms)) },
            runsMs: ref.total_ms.map((x) => round(x)),
            contiguousVariant: {
              what: 'np.ascontiguousarray(data) before ndimage.zoom (copy time included): ndimage loops in C order, nibabel arrays are Fortran-order views',
              medianMs: { total: round(median(ref.total_contiguous_ms)), resample: round(median(ref.resample_contiguous_ms)) },
            },
            versions: ref.versions,
            rasShape: ref.shape_in_ras,
          }
        : null,
      ratio: refFastMedian ? round(oursMedian / refFastMedian, 2) : null,
      ratioMeaning: 'llmed median total / nibabel+scipy median total with the faster (C-contiguous) zoom; below 1 = llmed faster',
      ratioVsPlainScipy: refMedian ? round(oursMedian / refMedian, 2) : null,
      maxAbsDiff,
      note: refNote || 'both pipelines single-threaded; same input file; outputs compared voxel for voxel',
    };
    const outDir = path.join(repoRoot, 'bench/results');
    mkdirSync(outDir, { recursive: true });
    writeFileSync(path.join(outDir, 'imaging-read-reorient-resample.json'), `${JSON.stringify(result, null, 2)}\n`);
    const md = [
      '# imaging: read → reorient (RAS) → resample (trilinear)',
      '',
      `Input: ${INPUT_SHAPE.join('×')} float32 .nii.gz (${(result.input.gzBytes / 1e6).toFixed(1)} MB), made by resampling \`${path.basename(source)}\` (orientation ${last.orientation}); RAS shape ${last.rasDims.join('×')}; output ${OUTPUT_SHAPE.join('×')}, align corners.`,
      `Machine: ${result.machine.cpus} CPUs (${result.machine.cpuModel}), Node ${process.version}${ref ? `, Python ${ref.versions.python}, nibabel ${ref.versions.nibabel}, scipy ${ref.versions.scipy}, numpy ${ref.versions.numpy}` : ''}. Median of ${runs} runs after one warm-up, both pipelines in the same run; 1-min load average at start ${result.machine.loadAverage1mAtStart}. ${result.date.slice(0, 10)}.`,
      '',
      '| pipeline | total (ms) | read (ms) | reorient (ms) | resample (ms) |',
      '| --- | ---: | ---: | ---: | ---: |',
      `| llmed (TypeScript) | ${result.llmed.medianMs.total} | ${result.llmed.medianMs.read} | ${result.llmed.medianMs.reorient} | ${result.llmed.medianMs.resample} |`,
      ref ? `| nibabel + scipy.ndimage.zoom(order=1), C-contiguous copy first | ${result.nibabelScipy!.contiguousVariant.medianMs.total} | ${result.nibabelScipy!.medianMs.readReorient} (read + reorient) | (lazy view) | ${result.nibabelScipy!.contiguousVariant.medianMs.resample} (incl. copy) |` : `| nibabel + scipy | not run: ${refNote} | | | |`,
      ref ? `| nibabel + scipy.ndimage.zoom(order=1), as nibabel returns it | ${result.nibabelScipy!.medianMs.total} | ${result.nibabelScipy!.medianMs.readReorient} (read + reorient) | (lazy view) | ${result.nibabelScipy!.medianMs.resample} |` : '',
      '',
      ref
        ? `Ratio llmed / nibabel+scipy (total, against the faster contiguous variant): **${result.ratio}**; against zoom on nibabel's array as returned: ${result.ratioVsPlainScipy} (below 1 means llmed is faster). ` +
          `Read + reorient alone: llmed ${round(result.llmed.medianMs.read + result.llmed.medianMs.reorient)} ms vs nibabel ${result.nibabelScipy!.medianMs.readReorient} ms — nibabel's reorientation is a lazy strided view, llmed materialises the RAS array. ` +
          `Largest voxel difference between the two outputs: ${maxAbsDiff!.toExponential(2)} (same align-corners convention).`
        : '',
      '',
      'Reproduce: `npx tsx bench/imaging/read-reorient-resample.ts [runs]`.',
      '',
    ].join('\n');
    writeFileSync(path.join(outDir, 'imaging-read-reorient-resample.md'), md);
    console.log(`ratio llmed/nibabel+scipy = ${result.ratio}; max |diff| = ${maxAbsDiff}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
