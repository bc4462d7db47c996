/**
 * Inference benchmark (not a test) for issue 4, "ONNX export, native registration in Node": one exported
 * field predictor timed three ways on the same pair, and the TypeScript warp against torch's grid_sample,
 * at two sizes, all in one run.
 *
 *   npx tsx bench/inference/inference.ts [--runs 9] [--large-runs 5] [--large-runs-1t 5] [--rebuild]
 *
 * Sizes: the demo experiment (configs/demo/config.json, 48×64×48) and the "knee" size 160×160×96 — the
 * same architecture with input and preprocess shape [160,160,96] and a 10×10×6 token grid (1/16 of the
 * input), checked with `llmed config check` before use. For each size a run is trained for one step
 * (weights do not change speed) and exported with llmed.export (LoRA merged, fp32, opset 20, parity
 * checked); bench/inference/make_model.py does that under .cache/bench/inference/<size>/ and reuses a
 * previous build with the same spec, config and data unless --rebuild.
 *
 * Field predictor, on the export's own parity pair (first labelled test pair), 2 threads (and 1):
 *   (a) onnxruntime-node running model.onnx          (this process)
 *   (b) PyTorch eager on the same weights            (load_run_model + merge_lora, fp32, no_grad)
 *   (c) onnxruntime (Python) running the same file   (b and c in bench/inference/python_side.py)
 *   (c′) onnxruntime for Python at onnxruntime-node's own version (pip-installed once into
 *        .cache/bench/inference/; skipped if that fails) — the venv's onnxruntime may be newer, and a
 *        gap between (a) and (c) is then the version, not the Node binding
 * Warp of the moving image by (a)'s field: warpTrilinear (TypeScript, one thread) vs
 * torch.nn.functional.grid_sample (trilinear, align_corners=True, zeros) on a precomputed sampling grid,
 * with 1 and 2 torch threads, and llmed.nn.warp (field → grid → grid_sample, what warpTrilinear does).
 *
 * Every contender is warmed up, then timed one call at a time in interleaved rounds (a, b, c, c′, then
 * the order rotates) so that load from other work on the machine falls on all of them alike. Reported:
 * median wall ms (the targets are judged on these), minimum, and median CPU time of the calling process
 * (unmoved by waiting for a core). Writes bench/results/inference.{json,md} (temp file, then rename).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { composeModel, loadExperimentConfig, loadRegistry, loadWorkspace, publishFolder, stagingFolder, writeFileAtomicSync, type ExperimentConfig } from '@llmed/core';
import { BRIDGE_PYTHON_ROOT } from '@llmed/bridge';
import { readPreparedVolume } from '../../packages/imaging/src/cache.ts';
import { warpTrilinear } from '../../packages/imaging/src/warp.ts';
import { prepareExperiment } from '@llmed/data';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const here = join(root, 'bench/inference');
const python = join(root, '.venv/bin/python');
const cacheDir = join(root, '.cache/bench/inference');

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const REBUILD = process.argv.includes('--rebuild');
const THREADS = [2, 1] as const; // the same count for (a), (b), (c); 2 = every core of the target machine

interface SizeCase {
  label: string;
  configFile: string;
  shape: [number, number, number];
  tokensGrid: number[];
  warmups: number;
  runs: Record<number, number>; // timed rounds per thread count
  warpRuns: number;
  synthetic: boolean;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const writeAtomic = (file: string, text: string) => writeFileAtomicSync(file, text);

// ---- the Python side: one long-lived process answering one JSON line per command ----------------------

class PythonSide {
  private child: ChildProcessWithoutNullStreams;
  private waiting: ((line: string) => void)[] = [];
  private exited: string | null = null;

  constructor(extraEnv: Record<string, string> = {}) {
    this.child = spawn(python, [join(here, 'python_side.py')], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1', ...extraEnv } });
    this.child.stderr.on('data', (chunk) => process.stderr.write(chunk));
    createInterface({ input: this.child.stdout }).on('line', (line) => this.waiting.shift()?.(line));
    this.child.on('exit', (code) => {
      this.exited = `python_side.py exited with code ${code}`;
      for (const w of this.waiting.splice(0)) w(JSON.stringify({ ok: false, message: this.exited }));
    });
  }

  async ask<T = Record<string, unknown>>(command: Record<string, unknown>): Promise<T & { ok: boolean }> {
    if (this.exited) throw new Error(this.exited);
    const line = await new Promise<string>((res) => {
      this.waiting.push(res);
      this.child.stdin.write(`${JSON.stringify(command)}\n`);
    });
    const answer = JSON.parse(line);
    if (!answer.ok) throw new Error(`python_side ${command.cmd}: ${answer.message}\n${answer.traceback ?? ''}`);
    return answer;
  }

  async time(what: string, threads: number): Promise<Timing> {
    const { ms, cpuMs } = await this.ask<Timing>({ cmd: 'time', what, threads });
    return { ms, cpuMs };
  }

  async close() {
    if (!this.exited) {
      await this.ask({ cmd: 'quit' }).catch(() => {});
      this.child.kill();
    }
  }
}

/**
 * onnxruntime for Python at the exact version onnxruntime-node ships (the venv's may be newer), installed
 * once with pip into .cache/bench/ so that (a) vs (c) can be told apart from a version change. Returns the
 * folder to put on PYTHONPATH, or null with the reason when it cannot be had (offline): then only (c) runs.
 */
function onnxruntimeAtNodeVersion(version: string): { path: string | null; note: string } {
  const target = join(cacheDir, `onnxruntime-${version}`);
  if (existsSync(join(target, 'onnxruntime', '__init__.py'))) return { path: target, note: `onnxruntime ${version} from ${relative(root, target)}` };
  const staging = stagingFolder(target);
  rmSync(staging, { recursive: true, force: true });
  console.log(`installing onnxruntime==${version} (Python) into ${relative(root, target)} to compare like with like`);
  const r = spawnSync(python, ['-m', 'pip', 'install', '--quiet', '--no-deps', '--target', staging, `onnxruntime==${version}`], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(staging, { recursive: true, force: true });
    return { path: null, note: `pip could not install onnxruntime==${version}: ${(r.stderr || r.stdout).trim().split('\n').pop()}` };
  }
  publishFolder(staging, target);
  return { path: target, note: `onnxruntime ${version} installed by this run into ${relative(root, target)}` };
}

// ---- building the model of one size ----------------------------------------------------------------------

function configCheck(configFile: string): string {
  const r = spawnSync(process.execPath, [join(root, 'packages/cli/bin/llmed.mjs'), 'config', 'check', configFile], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`llmed config check ${configFile} failed:\n${r.stdout}${r.stderr}`);
  return r.stdout.split('\n')[0].replace(/^✓\s*/, '');
}

async function buildModel(c: SizeCase, ws: ReturnType<typeof loadWorkspace>, registry: Awaited<ReturnType<typeof loadRegistry>>) {
  const dir = join(cacheDir, c.label);
  mkdirSync(dir, { recursive: true });
  const check = configCheck(c.configFile);
  const config: ExperimentConfig = loadExperimentConfig(c.configFile);
  const spec = composeModel(config, c.configFile, registry, { workspaceRoot: root });
  writeFileSync(join(dir, 'spec.json'), `${JSON.stringify(spec, null, 2)}\n`);
  writeFileSync(join(dir, 'run-config.json'), `${JSON.stringify(config, null, 2)}\n`);
  const prepared = c.synthetic ? join(dir, 'prepared') : (await prepareExperiment(ws, 'demo', config)).dir;
  const job = {
    bridgePythonRoot: BRIDGE_PYTHON_ROOT, workspaceRoot: root, runDir: join(dir, 'run'), specFile: join(dir, 'spec.json'),
    configFile: join(dir, 'run-config.json'), preparedDir: prepared, synthetic: c.synthetic ? c.shape : null, steps: 1, threads: 2, rebuild: REBUILD,
    plugins: registry.pythonEntries(),
  };
  writeFileSync(join(dir, 'job.json'), JSON.stringify(job, null, 2));
  console.log(`[${c.label}] building the model (train 1 step + export) — or reusing the last build`);
  const r = spawnSync(python, [join(here, 'make_model.py'), join(dir, 'job.json')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  const built = JSON.parse(last || '{}');
  if (r.status !== 0 || !built.ok) throw new Error(`make_model.py failed for ${c.label}: ${last}`);
  return { dir, check, spec, prepared, built };
}

// ---- one size ----------------------------------------------------------------------------------------

/** One call: wall ms, and CPU ms of the whole process that made it (all its threads). */
interface Timing { ms: number; cpuMs: number }
interface Series { wall: number[]; cpu: number[] }
const newSeries = (): Series => ({ wall: [], cpu: [] });
const push = (x: Series, t: Timing) => { x.wall.push(t.ms); x.cpu.push(t.cpuMs); };

/** Time a synchronous or asynchronous call made in this process. */
async function timeHere<T>(fn: () => T | Promise<T>): Promise<Timing & { out: T }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const out = await fn();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { ms, cpuMs: (c.user + c.system) / 1000, out };
}

const PREDICTORS = ['onnxruntimeNode', 'torchEager', 'onnxruntimePython', 'onnxruntimePythonNodeVersion'] as const;
type Predictor = (typeof PREDICTORS)[number];

function summary(x: Series) {
  return { median: round(median(x.wall)), min: round(Math.min(...x.wall)), cpuMedian: round(median(x.cpu)) };
}
function ratios(num: Series, den: Series) {
  return {
    ofMedians: round(median(num.wall) / median(den.wall), 3),
    paired: pairedRatio(num.wall, den.wall),
    ofMins: round(Math.min(...num.wall) / Math.min(...den.wall), 3),
    ofCpuMedians: round(median(num.cpu) / median(den.cpu), 3),
  };
}
function pairedRatio(num: number[], den: number[]) {
  return round(median(num.map((x, i) => x / den[i])), 3);
}

async function measure(c: SizeCase, ws: ReturnType<typeof loadWorkspace>, registry: Awaited<ReturnType<typeof loadRegistry>>, sameVersionOrt: string | null) {
  const load1mAtStart = os.loadavg()[0];
  const { dir, check, prepared, built } = await buildModel(c, ws, registry);
  const exportDir: string = built.exportDir;
  const onnxFile = join(exportDir, 'model.onnx');
  const pairs = JSON.parse(readFileSync(join(prepared, 'pairs.json'), 'utf8'));
  const pair = (pairs.test as { moving: string; fixed: string; movingLabels?: string }[]).find((p) => p.movingLabels) ?? pairs.test[0];
  const moving = await readPreparedVolume(prepared, pair.moving);
  const fixed = await readPreparedVolume(prepared, pair.fixed);
  const [nx, ny, nz] = moving.volume.dims;
  if (nx !== c.shape[0] || ny !== c.shape[1] || nz !== c.shape[2]) throw new Error(`prepared ${prepared} is ${moving.volume.dims}, expected ${c.shape}`);
  const movingData = moving.volume.data as Float32Array;
  const fixedData = fixed.volume.data as Float32Array;
  const inputShape = [1, 1, nz, ny, nx];

  // (a) onnxruntime-node, one session per thread count, options matching python_side.py's
  const sessions = new Map<number, ort.InferenceSession>();
  for (const n of THREADS) {
    sessions.set(n, await ort.InferenceSession.create(onnxFile, {
      executionProviders: ['cpu'], intraOpNumThreads: n, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
    }));
  }
  const feeds = () => ({ moving: new ort.Tensor('float32', movingData, inputShape), fixed: new ort.Tensor('float32', fixedData, inputShape) });
  const runNode = async (n: number) => (await sessions.get(n)!.run(feeds())).field.data as Float32Array;

  const load = {
    cmd: 'load', bridgePythonRoot: BRIDGE_PYTHON_ROOT, workspaceRoot: root, runDir: join(dir, 'run'), onnxFile, plugins: registry.pythonEntries(),
    moving: join(prepared, moving.header.dataFile), fixed: join(prepared, fixed.header.dataFile), shapeKji: [nz, ny, nx], threads: THREADS,
  };
  const py = new PythonSide();
  const pyOrt = sameVersionOrt ? new PythonSide({ PYTHONPATH: sameVersionOrt }) : null;
  try {
    const loaded = await py.ask<{ modelLoadSeconds: number; loraMerged: number; versions: Record<string, unknown> }>(load);
    const loadedOrt = pyOrt ? await pyOrt.ask<{ versions: Record<string, unknown> }>({ ...load, torch: false }) : null;

    const timers: Partial<Record<Predictor, (n: number) => Promise<Timing>>> = {
      onnxruntimeNode: (n) => timeHere(() => runNode(n)),
      torchEager: (n) => py.time('torch', n),
      onnxruntimePython: (n) => py.time('ort', n),
    };
    if (pyOrt) timers.onnxruntimePythonNodeVersion = (n) => pyOrt.time('ort', n);
    const active = PREDICTORS.filter((k) => timers[k]);
    // A pause after every call: onnxruntime's and OpenMP's workers spin a while after a run, which
    // must not eat into the next contender's time.
    const call = async (k: Predictor, n: number) => {
      const t = await timers[k]!(n);
      await sleep(50);
      return { ms: t.ms, cpuMs: t.cpuMs };
    };

    console.log(`[${c.label}] warm-up (${c.warmups} call(s) per contender and thread count)`);
    for (let w = 0; w < c.warmups; w++) for (const n of THREADS) for (const k of active) await call(k, n);

    // Field predictor: rounds of one call per contender; the order rotates from round to round.
    const times = Object.fromEntries(active.map((k) => [k, Object.fromEntries(THREADS.map((n) => [n, newSeries()]))])) as Record<Predictor, Record<number, Series>>;
    for (const n of THREADS) {
      for (let r = 0; r < c.runs[n]; r++) {
        const order = active.map((_, i) => active[(i + r) % active.length]);
        for (const k of order) push(times[k][n], await call(k, n));
        console.log(`[${c.label}] ${n} thread(s) round ${r + 1}/${c.runs[n]}: ${active.map((k) => `${k} ${round(times[k][n].wall.at(-1)!)}`).join(', ')} ms`);
      }
    }

    // The warps: the moving image sampled with (a)'s field.
    const field = await runNode(2);
    const fieldFile = join(dir, 'node_field.f32');
    writeFileSync(fieldFile, Buffer.from(field.buffer, field.byteOffset, field.byteLength));
    await py.ask({ cmd: 'field', file: fieldFile });
    const srcDims = [nx, ny, nz];
    const timeTs = () => timeHere(() => warpTrilinear(movingData, srcDims, field, srcDims));
    let warped = (await timeTs()).out;
    for (let w = 0; w < 5; w++) {
      warped = (await timeTs()).out;
      for (const n of THREADS) await py.time('grid_sample', n);
      await py.time('llmed_warp', 1);
    }
    const warp: Record<string, Series> = { typescript1t: newSeries(), gridSample1t: newSeries(), gridSample2t: newSeries(), llmedWarp1t: newSeries() };
    for (let r = 0; r < c.warpRuns; r++) {
      const ts = await timeTs();
      warped = ts.out;
      push(warp.typescript1t, ts);
      await sleep(10);
      push(warp.gridSample1t, await py.time('grid_sample', 1));
      await sleep(10);
      push(warp.gridSample2t, await py.time('grid_sample', 2));
      await sleep(10);
      push(warp.llmedWarp1t, await py.time('llmed_warp', 1));
      await sleep(10);
    }

    // Agreement: the fields of every path, and the two warps.
    const outs = await py.ask<{ torchVsOrt: number; fieldAbsMax: number }>({ cmd: 'outputs', dir, tag: 'python' });
    if (pyOrt) await pyOrt.ask({ cmd: 'outputs', dir, tag: 'python-node-version' });
    const readF32 = (f: string) => {
      const b = readFileSync(join(dir, f));
      return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    };
    const maxDiff = (x: Float32Array, y: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
    const agreement = {
      nodeVsPythonOnnxruntimeField: maxDiff(field, readF32('python_ort_field.f32')),
      nodeVsPythonOnnxruntimeNodeVersionField: pyOrt ? maxDiff(field, readF32('python-node-version_ort_field.f32')) : null,
      nodeOnnxruntimeVsTorchField: maxDiff(field, readF32('python_torch_field.f32')),
      torchVsPythonOnnxruntimeField: outs.torchVsOrt,
      typescriptWarpVsGridSample: maxDiff(warped, readF32('python_grid_sample_warped.f32')),
      fieldAbsMaxVoxels: outs.fieldAbsMax,
      unit: 'largest absolute difference; fields in voxels, warped image in intensity (inputs in [0, 1])',
    };

    const predictor: Record<string, unknown> = {};
    for (const n of THREADS) {
      const t = (k: Predictor) => times[k][n];
      predictor[`threads${n}`] = {
        runs: c.runs[n],
        ms: Object.fromEntries(active.map((k) => [k, summary(t(k))])),
        runsMs: Object.fromEntries(active.map((k) => [k, t(k).wall.map((x) => round(x))])),
        runsCpuMs: Object.fromEntries(active.map((k) => [k, t(k).cpu.map((x) => round(x))])),
        nodeOverPythonOnnxruntime: ratios(t('onnxruntimeNode'), t('onnxruntimePython')),
        nodeOverPythonOnnxruntimeNodeVersion: pyOrt ? ratios(t('onnxruntimeNode'), t('onnxruntimePythonNodeVersion')) : null,
        torchOverNode: ratios(t('torchEager'), t('onnxruntimeNode')),
      };
    }
    return {
      label: c.label,
      shape: c.shape,
      tokensGrid: c.tokensGrid,
      tokens: c.tokensGrid.reduce((p, q) => p * q, 1),
      configFile: relative(root, c.configFile),
      configCheck: check,
      model: { parameters: built.parameters, onnxBytes: built.onnxBytes, reusedBuild: built.reused, buildSeconds: built.seconds ?? null,
               exportParity: { maxAbsFieldDiffVoxels: built.parity.maxAbsFieldDiffVoxels, passed: built.parity.passed },
               loraMerged: loaded.loraMerged, torchModelLoadSeconds: loaded.modelLoadSeconds, exportDir: relative(root, exportDir) },
      pair: { moving: pair.moving, fixed: pair.fixed, prepared: relative(root, prepared) },
      warmups: c.warmups,
      predictor,
      warp: {
        runs: c.warpRuns,
        ms: Object.fromEntries(Object.keys(warp).map((k) => [k, summary(warp[k])])),
        runsMs: Object.fromEntries(Object.entries(warp).map(([k, v]) => [k, v.wall.map((x) => round(x, 2))])),
        runsCpuMs: Object.fromEntries(Object.entries(warp).map(([k, v]) => [k, v.cpu.map((x) => round(x, 2))])),
        typescriptOverGridSample1t: ratios(warp.typescript1t, warp.gridSample1t),
        typescriptOverGridSample2t: ratios(warp.typescript1t, warp.gridSample2t),
        typescriptOverLlmedWarp1t: ratios(warp.typescript1t, warp.llmedWarp1t),
      },
      agreement,
      versions: { ...loaded.versions, sameVersionOnnxruntime: loadedOrt?.versions ?? null },
      load1m: { atStart: round(load1mAtStart, 2), atEnd: round(os.loadavg()[0], 2) },
    };
  } finally {
    await py.close();
    await pyOrt?.close();
    for (const s of sessions.values()) await s.release();
  }
}

// ---- main ------------------------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  const ws = loadWorkspace(root);
  const registry = await loadRegistry(ws);
  const demoFile = join(root, 'configs/demo/config.json');
  const demo = loadExperimentConfig(demoFile);
  // The knee size: the demo's architecture scaled, tokens kept at 1/16 of the input per axis.
  const largeShape: [number, number, number] = [160, 160, 96];
  const large = JSON.parse(readFileSync(demoFile, 'utf8'));
  large.description = `bench/inference: the demo architecture at ${largeShape.join('×')} (knee size), tokens 1/16 per axis; synthetic data`;
  large.model.input.shape = largeShape;
  large.data.preprocess.shape = largeShape;
  large.model.tokens.with.grid = largeShape.map((n) => n / 16);
  const largeFile = join(cacheDir, 'knee', 'config.json');
  mkdirSync(dirname(largeFile), { recursive: true });
  writeFileSync(largeFile, `${JSON.stringify(large, null, 2)}\n`);

  const runs = flag('runs', 9);
  const cases: SizeCase[] = [
    { label: 'demo', configFile: demoFile, shape: demo.model.input.shape as [number, number, number], tokensGrid: (demo.model.tokens.with as { grid: number[] }).grid,
      warmups: 2, runs: { 2: runs, 1: runs }, warpRuns: 15, synthetic: false },
    { label: 'knee', configFile: largeFile, shape: largeShape, tokensGrid: large.model.tokens.with.grid,
      warmups: 1, runs: { 2: flag('large-runs', 5), 1: flag('large-runs-1t', 5) }, warpRuns: 7, synthetic: true },
  ];
  const nodeOrtVersion: string = JSON.parse(readFileSync(join(root, 'node_modules/onnxruntime-node/package.json'), 'utf8')).version;
  const sameVersion = onnxruntimeAtNodeVersion(nodeOrtVersion);
  const loadAtStart = os.loadavg();
  const results = [];
  for (const c of cases) results.push(await measure(c, ws, registry, sameVersion.path));

  const cpus = os.cpus();
  const result = {
    benchmark: 'inference: exported field predictor (onnxruntime-node vs torch eager vs onnxruntime Python) and TypeScript warp vs grid_sample',
    issue: 4,
    date: new Date().toISOString(),
    machine: {
      cpus: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', memGiB: round(os.totalmem() / 2 ** 30, 1), node: process.version,
      platform: `${os.platform()} ${os.arch()}`, onnxruntimeNode: nodeOrtVersion,
      loadAverageAtStart: loadAtStart.map((x) => round(x, 2)), loadAverageAtEnd: os.loadavg().map((x) => round(x, 2)),
    },
    threads: {
      predictor: 'intra-op threads 2 (and 1) for (a), (b), (c) and (c\u2032); onnxruntime inter-op 1, sequential, graph optimisation all; torch inter-op 1',
      typescriptWarp: 1,
      gridSample: [1, 2],
    },
    contenders: {
      onnxruntimeNode: '(a) onnxruntime-node running the exported model.onnx',
      torchEager: '(b) PyTorch eager, the run\'s model (load_run_model + merge_lora), fp32, no_grad, fields[-1]',
      onnxruntimePython: '(c) onnxruntime for Python from the venv, same model.onnx',
      onnxruntimePythonNodeVersion: `(c\u2032) onnxruntime for Python at onnxruntime-node's version (${sameVersion.note})`,
    },
    method: 'warm-up, then rounds of one call per contender (order rotating), median; also min and the median of per-round ratios. Times exclude process start, model load and the Node↔Python pipe. Inputs: the export parity pair (moving, fixed) of each size; the warps sample the moving image with (a)\'s field on the full grid.',
    targets: {
      nodeOverPythonOnnxruntime: '(a)/(c) ≤ 1.1',
      torchOverNode: '(b)/(a) ≥ 1.5',
      typescriptOverGridSample1t: 'TS warp / grid_sample (1 thread) ≤ 1.5',
    },
    sizes: results,
    wallSeconds: round((Date.now() - started) / 1000, 1),
  };
  const outDir = join(root, 'bench/results');
  mkdirSync(outDir, { recursive: true });
  writeAtomic(join(outDir, 'inference.json'), `${JSON.stringify(result, null, 2)}\n`);
  writeAtomic(join(outDir, 'inference.md'), markdown(result));
  console.log(markdown(result));
}

// ---- the report ------------------------------------------------------------------------------------------

type Result = { date: string; machine: Record<string, any>; contenders: Record<string, string>; sizes: any[]; wallSeconds: number };

function markdown(r: Result): string {
  const verdict = (ok: boolean) => (ok ? 'met' : 'missed');
  const v = r.sizes[0]?.versions ?? {};
  const same = v.sameVersionOnnxruntime;
  const lines = [
    '# Inference: exported field predictor and warp (issue 4)',
    '',
    `Machine: ${r.machine.cpus} CPUs (${r.machine.cpuModel}), ${r.machine.memGiB} GiB, ${r.machine.platform}; Node ${r.machine.node}, onnxruntime-node ${r.machine.onnxruntimeNode}; ` +
      `Python ${v.python}, torch ${v.torch}, onnxruntime ${v.onnxruntime}${same ? ` (and ${same.onnxruntime} for (c′))` : ''}. ${r.date.slice(0, 16).replace('T', ' ')} UTC, whole run ${r.wallSeconds} s.`,
    `Load average (1/5/15 min) at start ${r.machine.loadAverageAtStart.join(' / ')}, at end ${r.machine.loadAverageAtEnd.join(' / ')}: other work shared the 2 cores ` +
      '(above 2 means contenders waited for a core). Contenders ran one call at a time in rotating order, so that load fell on all of them alike; ' +
      'minimums are listed as the figure least affected by it.',
    '',
    'Field predictor `(moving, fixed) → field`, the same weights: (a) onnxruntime-node on model.onnx, (b) PyTorch eager (load_run_model + merge_lora, fp32, ' +
      `no_grad), (c) onnxruntime for Python (venv, ${v.onnxruntime}) on the same model.onnx${same ? `, (c′) onnxruntime ${same.onnxruntime} for Python — the version onnxruntime-node ships, to separate the binding from the version` : ''}. ` +
      'Same intra-op thread count for all. Median ms (min) after warm-up.',
    '',
    `| size | tokens | threads | runs | (a) ort-node | (b) torch | (c) ort-python | ${same ? '(c′) ort-python same version | ' : ''}(a)/(c) ≤ 1.1 | ${same ? '(a)/(c′) | ' : ''}(b)/(a) ≥ 1.5 |`,
    `| --- | ---: | ---: | ---: | ---: | ---: | ---: | ${same ? '---: | ' : ''}---: | ${same ? '---: | ' : ''}---: |`,
  ];
  const cell = (x: { median: number; min: number }) => `${x.median} (${x.min})`;
  for (const s of r.sizes) {
    for (const key of Object.keys(s.predictor).sort().reverse()) {
      const p = s.predictor[key];
      const n = key.replace('threads', '');
      const ac = p.nodeOverPythonOnnxruntime, ba = p.torchOverNode, ac2 = p.nodeOverPythonOnnxruntimeNodeVersion;
      lines.push(`| ${s.label} ${s.shape.join('×')} | ${s.tokens} | ${n} | ${p.runs} | ${cell(p.ms.onnxruntimeNode)} | ${cell(p.ms.torchEager)} | ${cell(p.ms.onnxruntimePython)} | ` +
        `${same ? `${cell(p.ms.onnxruntimePythonNodeVersion)} | ` : ''}**${ac.ofMedians}** ${verdict(ac.ofMedians <= 1.1)} (min ${ac.ofMins}) | ` +
        `${same ? `${ac2.ofMedians} (min ${ac2.ofMins}) | ` : ''}**${ba.ofMedians}** ${verdict(ba.ofMedians >= 1.5)} (min ${ba.ofMins}) |`);
    }
  }
  lines.push('', 'Ratios are of the medians (in brackets: of the minimums); the JSON also has the median of the per-round ratios.', '',
    'CPU time per call (the calling process, all its threads; median ms). Waiting for a core costs no CPU time, so this is the figure least ' +
    'moved by other work on the machine; with 1 thread it is the work itself, with 2 it also counts worker threads spinning at barriers.', '',
    `| size | threads | (a) ort-node | (b) torch | (c) ort-python | ${same ? '(c′) same version | ' : ''}(a)/(c) | ${same ? '(a)/(c′) | ' : ''}(b)/(a) |`,
    `| --- | ---: | ---: | ---: | ---: | ${same ? '---: | ' : ''}---: | ${same ? '---: | ' : ''}---: |`);
  for (const s of r.sizes) {
    for (const key of Object.keys(s.predictor).sort().reverse()) {
      const p = s.predictor[key];
      lines.push(`| ${s.label} ${s.shape.join('×')} | ${key.replace('threads', '')} | ${p.ms.onnxruntimeNode.cpuMedian} | ${p.ms.torchEager.cpuMedian} | ${p.ms.onnxruntimePython.cpuMedian} | ` +
        `${same ? `${p.ms.onnxruntimePythonNodeVersion.cpuMedian} | ` : ''}${p.nodeOverPythonOnnxruntime.ofCpuMedians} | ${same ? `${p.nodeOverPythonOnnxruntimeNodeVersion.ofCpuMedians} | ` : ''}${p.torchOverNode.ofCpuMedians} |`);
    }
  }
  lines.push('',
    'Warp of the moving image by (a)\'s field on the full grid: trilinear, align corners, zeros outside. grid_sample gets a precomputed ' +
    'normalised sampling grid (its call alone is timed); llmed.nn.warp also forms that grid from the displacement field, as warpTrilinear does.', '',
    '| size | runs | TS warpTrilinear, 1 thread | grid_sample, 1 thread | grid_sample, 2 threads | llmed.nn.warp, 1 thread | TS / grid_sample 1t ≤ 1.5 | TS / grid_sample 2t | TS / llmed.nn.warp 1t |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const s of r.sizes) {
    const w = s.warp;
    lines.push(`| ${s.label} ${s.shape.join('×')} | ${w.runs} | ${cell(w.ms.typescript1t)} | ${cell(w.ms.gridSample1t)} | ${cell(w.ms.gridSample2t)} | ${cell(w.ms.llmedWarp1t)} | ` +
      `**${w.typescriptOverGridSample1t.ofMedians}** ${verdict(w.typescriptOverGridSample1t.ofMedians <= 1.5)} (min ${w.typescriptOverGridSample1t.ofMins}) | ` +
      `${w.typescriptOverGridSample2t.ofMedians} (min ${w.typescriptOverGridSample2t.ofMins}) | ${w.typescriptOverLlmedWarp1t.ofMedians} (min ${w.typescriptOverLlmedWarp1t.ofMins}) |`);
  }
  lines.push('', 'Warp CPU time per call (median ms): ' + r.sizes.map((s) => `${s.label}: TS ${s.warp.ms.typescript1t.cpuMedian}, grid_sample 1t ${s.warp.ms.gridSample1t.cpuMedian}, ` +
    `llmed.nn.warp 1t ${s.warp.ms.llmedWarp1t.cpuMedian}; TS / grid_sample 1t ${s.warp.typescriptOverGridSample1t.ofCpuMedians}`).join('. ') + '.');
  lines.push('', 'Agreement (largest absolute difference; fields in voxels) and setup:', '');
  for (const s of r.sizes) {
    const a = s.agreement;
    lines.push(`- ${s.label}: field (a) vs (c) ${a.nodeVsPythonOnnxruntimeField.toExponential(2)}${a.nodeVsPythonOnnxruntimeNodeVersionField === null ? '' : `, (a) vs (c′) ${a.nodeVsPythonOnnxruntimeNodeVersionField.toExponential(2)}`}, ` +
      `(a) vs (b) ${a.nodeOnnxruntimeVsTorchField.toExponential(2)} (largest |field| ${a.fieldAbsMaxVoxels.toFixed(3)} voxels); TS warp vs grid_sample ${a.typescriptWarpVsGridSample.toExponential(2)}. ` +
      `Export parity ${s.model.exportParity.passed ? 'passed' : 'FAILED'} (${Number(s.model.exportParity.maxAbsFieldDiffVoxels).toExponential(2)} voxels). ` +
      `Model ${(s.model.parameters / 1e6).toFixed(2)} M parameters, ${(s.model.onnxBytes / 2 ** 20).toFixed(1)} MB ONNX, ${s.model.reusedBuild ? 'build reused from an earlier run' : 'built in this run'}; ` +
      `warm-up ${s.warmups} call(s) per contender. \`llmed config check\`: ${s.configCheck}. Load average (1 min) ${s.load1m.atStart} → ${s.load1m.atEnd}.`);
  }
  lines.push('', 'Data: demo — the demo experiment\'s prepared Colin27 pair; knee — synthetic smooth volumes (speed does not depend on content). ' +
    'Models trained 1 step (weights do not change speed) and exported by llmed.export (LoRA merged, fp32, opset 20, parity-checked).', '',
    'Reproduce: `npm run bench:inference` (or `npx tsx bench/inference/inference.ts [--runs 9] [--large-runs 5] [--large-runs-1t 5] [--rebuild]`).', '');
  return lines.join('\n');
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
}
