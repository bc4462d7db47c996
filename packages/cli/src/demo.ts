/**
 * `llmed demo` (what `npm run demo` runs): prepares the embedded demo data from real anatomy (Colin27 +
 * AAL from Debian's mricron-data, under synthetic smooth deformations), composes and checks its model,
 * trains it through the Python bridge, exports the trained field predictor to ONNX (parity-checked),
 * evaluates it natively in Node on the held-out test pairs (table, box plot, pictures); then trains the
 * demo-sized report generator (report-demo: SmolLM2-135M with LoRA over a frozen pretrained 3-D CT encoder,
 * on the real-anatomy report stand-in), exports it, and generates the report of a held-out sample in Node
 * beside its reference; and says what to run next (register a pair of your own, open the viewer).
 *
 * With two or more cores the report generator trains *alongside* the registration model, as a child
 * `llmed train report-demo` on half of them, instead of after it: neither training scales to a second core
 * (registration 1.67×, report generation about 1.4× from one thread to two, measured); two side by side, on
 * one core each, keep both cores busy.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeReportSpec, describeSpec, isLlmedError } from '@llmed/core';
import { readPreparedVolume } from '@llmed/imaging';
import { ReportGenerator } from '@llmed/runtime';
import { reportPreparedDir } from '@llmed/data';
import { flagString, type ParsedArgs } from './args.ts';
import { loadAnyExperiment, loadExperiment } from './context.ts';
import { runPrepare } from './data.ts';
import { evaluateRun } from './evaluate.ts';
import { describeExport, exportRun } from './export.ts';
import { checkRequirements, timestamp, trainExperiment } from './train.ts';
import { trainReportExperiment } from './train-report.ts';

const CLI = fileURLToPath(new URL('../bin/llmed.mjs', import.meta.url));

/** The report generator's training and export running as child processes (see the module comment). */
interface ReportTraining {
  runDir: string;
  log: string;
  threads: number;
  started: number;
  exit: Promise<number>;
  stop(): void;
}

/** `llmed train report-demo`, then `llmed export` of that run, as child processes on `threads` threads. */
function startReportTraining(root: string, threads: number, device: string | undefined): ReportTraining {
  const runDir = join(root, 'runs', 'report-demo', timestamp());
  const log = `${runDir}.train.log`;
  mkdirSync(dirname(log), { recursive: true });
  let current: ChildProcess | undefined;
  let stopped = false;
  const run = (args: string[]) => new Promise<number>((res) => {
    const fd = openSync(log, 'a');
    const child = spawn(process.execPath, [CLI, ...args], { cwd: root, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    current = child;
    child.once('exit', (code, signal) => res(code ?? (signal ? 128 : 1)));
    child.once('error', () => res(1));
  });
  const exit = (async () => {
    const trained = await run(['train', 'report-demo', '--run-dir', runDir, '--threads', String(threads), ...(device ? ['--device', device] : [])]);
    if (trained !== 0 || stopped) return trained;
    return run(['export', runDir, '--threads', String(threads)]);
  })();
  return {
    runDir, log, threads, started: Date.now(), exit,
    stop: () => {
      stopped = true;
      if (current && current.exitCode === null && current.signalCode === null) current.kill('SIGTERM');
    },
  };
}

/** What the child printed, without its progress lines (a log, not a terminal: one line every few seconds). */
function reportTrainingSummary(log: string): string[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8').split('\n').map((l) => l.trimEnd()).filter((l) => l && !/ETA /.test(l) && !/^run folder:/.test(l));
}

export async function demo(args: ParsedArgs): Promise<number> {
  const t0 = Date.now();
  const ex = await loadExperiment('demo');
  const device = flagString(args, 'device') as 'auto' | 'cpu' | 'cuda' | undefined;
  console.log(`llmed demo — ${ex.config.method}: ${ex.config.data.title}`);
  console.log('1/8 model: composed and shape-checked');
  for (const line of describeSpec(ex.spec)) console.log(`    ${line}`);
  try {
    checkRequirements(ex);
  } catch (e) {
    if (isLlmedError(e)) {
      console.log(`    cannot train yet: ${e.message}`);
      console.log('    run `npm run setup` to fetch and convert the demo checkpoint');
      return 1;
    }
    throw e;
  }
  const rel = (p: string) => relative(process.cwd(), p) || p;
  const cores = availableParallelism();
  const reportEx = await loadAnyExperiment('report-demo');
  const alongside = cores >= 2 && reportEx.task === 'report' ? startReportTraining(ex.ws.root, Math.floor(cores / 2), device) : undefined;
  try {
    console.log('2/8 data');
    await runPrepare(ex.ws.root, ex.name, ex.config);
    console.log(`3/8 training (PyTorch through the Python bridge)${alongside ? ` on ${cores - alongside.threads} of ${cores} cores; the report generator trains alongside on the other ${alongside.threads === 1 ? 'one' : alongside.threads} (log: ${rel(alongside.log)})` : ''}`);
    // every core for the registration model once the report generator beside it is trained and exported
    const runDir = await trainExperiment(ex, { device, ...(alongside ? { threads: cores - alongside.threads, threadsLater: alongside.exit.then(() => cores) } : {}) });
    return await afterTraining(args, ex, reportEx, runDir, alongside, t0, rel);
  } finally {
    alongside?.stop();
  }
}

async function afterTraining(args: ParsedArgs, ex: Awaited<ReturnType<typeof loadExperiment>>, reportEx: Awaited<ReturnType<typeof loadAnyExperiment>>, runDir: string, alongside: ReportTraining | undefined, t0: number, rel: (p: string) => string): Promise<number> {
  console.log('4/8 export (ONNX, checked against torch)');
  const exported = await exportRun(runDir);
  for (const line of describeExport(exported)) console.log(`    ${line}`);
  console.log('5/8 evaluation on the held-out test pairs (onnxruntime-node, no Python)');
  const evaluated = await evaluateRun(runDir, {});
  console.log(evaluated.markdown);
  const registrationSeconds = (Date.now() - t0) / 1000;
  const report = await reportDemo(args, reportEx, alongside);
  const reportPart = report ? `report generation ${report.seconds.toFixed(0)} s${alongside ? ', alongside' : ''}` : 'report generation not run';
  console.log(`demo finished in ${((Date.now() - t0) / 1000).toFixed(0)} s (registration ${registrationSeconds.toFixed(0)} s, ${reportPart})${evaluated.verdict ? ` — ${evaluated.verdict}` : ''}`);
  console.log(`  run folder:   ${rel(runDir)}`);
  console.log(`  evaluation:   ${rel(evaluated.out)} (table.md, dice_per_label.png, pictures/)`);
  console.log(`  view it:      npm run llmed -- view ${rel(runDir)}`);
  if (report) {
    console.log(`  report run:   ${rel(report.runDir)}; a report of your own CT (no Python):
    npm run llmed -- report --model ${rel(join(report.runDir, 'export'))} --image ct.nii.gz --region abdomen`);
  }
  const brains = resolve(ex.ws.root, '..', 'shared', 'data', 'brain');
  const a = join(brains, 'image_A_160x192x144'), b = join(brains, 'image_B_160x192x144');
  if (existsSync(`${a}.nii.gz`)) {
    console.log(`  register a pair of real brains (OASIS-derived; no Python):
    npm run llmed -- register --model ${rel(join(runDir, 'export'))} --moving ${rel(`${a}.nii.gz`)} --fixed ${rel(`${b}.nii.gz`)} --moving-labels ${rel(`${a}_seg.nii.gz`)} --fixed-labels ${rel(`${b}_seg.nii.gz`)} --out registered-brains`);
  } else {
    console.log(`  register your own pair (no Python):
    npm run llmed -- register --model ${rel(join(runDir, 'export'))} --moving m.nii.gz --fixed f.nii.gz [--moving-labels ml.nii.gz --fixed-labels fl.nii.gz]`);
  }
  return 0;
}

/**
 * Steps 6–8: the demo-sized report generator. Returns undefined (saying why) when what it needs is not on
 * disk — the registration part above stands on its own.
 */
async function reportDemo(args: ParsedArgs, ex: Awaited<ReturnType<typeof loadAnyExperiment>>, alongside?: ReportTraining): Promise<{ runDir: string; seconds: number } | undefined> {
  const t0 = alongside?.started ?? Date.now();
  if (ex.task !== 'report') return undefined;
  console.log(`6/8 report generation: ${ex.config.method} — ${ex.config.data.title}`);
  for (const line of describeReportSpec(ex.spec)) console.log(`    ${line}`);
  console.log("7/8 data and training (the frozen encoder's features are computed once, then projector alignment and LoRA)");
  let runDir: string;
  if (alongside) {
    const log = relative(process.cwd(), alongside.log) || alongside.log;
    console.log(`    trained alongside the registration model (${log}); waiting for it to finish`);
    const code = await alongside.exit;
    const summary = reportTrainingSummary(alongside.log);
    if (code !== 0) {
      console.log(`    the report generator's training failed (exit ${code}); the end of ${log}:`);
      for (const line of summary.slice(-12)) console.log(`      ${line}`);
      return undefined;
    }
    for (const line of summary.filter((l) => /^(training |rp_| {2}reference:| {2}generated:)/.test(l))) console.log(`    ${line}`);
    runDir = alongside.runDir;
    renameSync(alongside.log, join(runDir, 'train-output.log'));
  } else {
    try {
      runDir = await trainReportExperiment(ex, { device: flagString(args, 'device') as 'auto' | 'cpu' | 'cuda' | undefined });
    } catch (e) {
      if (isLlmedError(e) && e.kind === 'data') {
        console.log(`    cannot train the report generator: ${e.message}`);
        return undefined;
      }
      throw e;
    }
  }
  console.log('8/8 export (vision + decoder with KV cache, parity-checked) and a report of a held-out sample, generated in Node');
  // trained alongside, the run was exported by the same child process
  const manifest = join(runDir, 'export', 'manifest.json');
  const exported = alongside && existsSync(manifest) ? { exportDir: join(runDir, 'export'), manifest: JSON.parse(readFileSync(manifest, 'utf8')) } : await exportRun(runDir);
  for (const line of describeExport(exported)) console.log(`    ${line}`);
  const prepared = reportPreparedDir(ex.ws, ex.name, ex.config);
  const samples = (JSON.parse(readFileSync(join(prepared, 'samples.json'), 'utf8')) as { samples: { id: string; image: string; region: string; kind: string; answer: string; split: string }[] }).samples;
  const sample = samples.find((s) => s.split === 'test' && s.kind === 'report' && s.region === 'abdomen') ?? samples.find((s) => s.split === 'test');
  if (!sample) return { runDir, seconds: (Date.now() - t0) / 1000 };
  const header = join(prepared, sample.image);
  const { volume } = await readPreparedVolume(dirname(header), basename(header, '.json'));
  const generator = await ReportGenerator.load(join(runDir, 'export'));
  try {
    console.log(`    held-out sample ${sample.id} (${sample.region}; ${ex.config.data.title.includes('stand-in') ? 'templated findings, not a radiologist\'s report' : ''})`);
    console.log(`    reference: ${sample.answer}`);
    process.stdout.write('    generated: ');
    const r = await generator.report(volume.data as Float32Array, { region: sample.region, onText: (d) => process.stdout.write(d) });
    process.stdout.write(`\n    (${r.ids.length} tokens, ${r.finish === 'stop' ? 'stopped at end of text' : 'cut at the token limit'}; first token after ${r.prefillMs.toFixed(0)} ms, then ${r.stepMs.toFixed(0)} ms/token)\n`);
  } finally {
    await generator.release();
  }
  return { runDir, seconds: (Date.now() - t0) / 1000 };
}
