/** `llmed train <experiment>`: prepare data, check what the model needs on disk, train through the bridge. */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { checkSpecPlugins, isLlmedError, LlmedError, readJsonFile, runFolderSpec, withWriteLock, type ExperimentConfig, type ModelSpec, type SpecNode } from '@llmed/core';
import type { DistributedLaunch, TrainStatus } from '@llmed/bridge';
import { flagNumber, flagString, type ParsedArgs } from './args.ts';
import { loadAnyExperiment, type Experiment, type Loaded } from './context.ts';
import { runPrepare } from './data.ts';
import { dataRoot, preparedDir } from '@llmed/data';
import { formatSeconds, Progress } from './progress.ts';
import { isRunFolder } from './runs.ts';

/**
 * Everything the experiment needs on disk before training: each plugin's `missing` check (LLM checkpoint
 * folders) and the dataset folder. All problems are reported together, each saying what to put where,
 * before Python starts.
 */
export function checkRequirements(ex: Loaded & Experiment): void {
  const problems: string[] = [];
  const seen = new Set<string>();
  const nodes: SpecNode[] = [ex.spec.encoder, ex.spec.tokens, ...ex.spec.block, ex.spec.stageAdapters, ex.spec.decoder, ...ex.spec.losses];
  for (const node of nodes) {
    if (node.sharesWith) continue;
    const msg = ex.registry.get(node.id).missing?.(node.options, { workspaceRoot: ex.ws.root });
    if (msg && !seen.has(msg)) {
      seen.add(msg);
      problems.push(`${node.path} (${node.id}): ${msg}`);
    }
  }
  const root = dataRoot(ex.ws.root, ex.config);
  if (ex.config.data.protocol !== 'synthetic-deformation' && !existsSync(root)) {
    problems.push(`data: ${ex.config.data.title} is not at ${root}. ${ex.config.data.howToGet}`);
  }
  if (problems.length) {
    const list = problems.map((p, i) => `\n  ${i + 1}. ${p}`).join('');
    throw new LlmedError('data', `cannot train '${ex.name}': ${problems.length === 1 ? 'one thing is' : `${problems.length} things are`} missing:${list}`, { where: relative(process.cwd(), ex.configFile) || ex.configFile, exitCode: 4 });
  }
}

/** A run folder's name: UTC time as YYYYMMDD-HHMMSS. */
export function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..+/, '').replace('T', '-');
}

export async function train(args: ParsedArgs): Promise<number> {
  const target = args.positionals[0];
  if (!target) throw new LlmedError('usage', 'train needs an experiment', { hint: 'llmed train demo' });
  const any = await loadAnyExperiment(target);
  const run = any.task === 'report'
    ? (o: TrainOptions) => import('./train-report.ts').then((m) => m.trainReportExperiment(any, o))
    : (o: TrainOptions) => trainExperiment(any, o);
  const runDir = await run({
    device: flagString(args, 'device') as 'auto' | 'cpu' | 'cuda' | undefined,
    resume: flagString(args, 'resume'),
    iterations: flagNumber(args, 'iterations'),
    batchSize: flagNumber(args, 'batch-size'),
    runDir: flagString(args, 'run-dir'),
    launch: launchFlags(args),
    threads: flagThreads(args),
  });
  console.log(`run folder: ${relative(process.cwd(), runDir) || runDir}`);
  return 0;
}

/** `--threads N`: a positive integer or nothing. */
export function flagThreads(args: ParsedArgs): number | undefined {
  const n = flagNumber(args, 'threads');
  if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new LlmedError('usage', `--threads must be an integer ≥ 1, not ${n}`, { where: '--threads' });
  return n;
}

/** torchrun's flags, when any is given: the run goes to several processes (`--nproc-per-node 1` included). */
export function launchFlags(args: ParsedArgs): DistributedLaunch | undefined {
  const nprocPerNode = flagNumber(args, 'nproc-per-node');
  const nnodes = flagNumber(args, 'nnodes');
  const nodeRank = flagNumber(args, 'node-rank');
  const masterAddr = flagString(args, 'master-addr');
  const masterPort = flagNumber(args, 'master-port');
  if ([nprocPerNode, nnodes, nodeRank, masterAddr, masterPort].every((v) => v === undefined)) return undefined;
  if (nprocPerNode === undefined) throw new LlmedError('usage', '--nnodes / --node-rank / --master-addr / --master-port go with --nproc-per-node N (processes on this node)');
  return { nprocPerNode, nnodes, nodeRank, masterAddr, masterPort };
}

export interface TrainOptions {
  device?: 'auto' | 'cpu' | 'cuda';
  resume?: string;
  iterations?: number;
  /** Pairs per step and process (train.batchSize); the global batch is this × the processes. */
  batchSize?: number;
  runDir?: string;
  /** Train under torchrun on these processes instead of in the pythonia session. */
  launch?: DistributedLaunch;
  /** torch's intra-op threads (default: torch's own, every core); the demo trains two models side by side. */
  threads?: number;
  /** When this resolves, the run switches to that many threads (the demo: when the model beside it is done). */
  threadsLater?: Promise<number>;
}

export async function trainExperiment(ex: Loaded & Experiment, opts: TrainOptions): Promise<string> {
  if (opts.device && !['auto', 'cpu', 'cuda'].includes(opts.device)) throw new LlmedError('usage', `--device must be auto, cpu or cuda, not '${opts.device}'`);
  if (opts.batchSize !== undefined && !(Number.isInteger(opts.batchSize) && opts.batchSize >= 1)) throw new LlmedError('usage', `--batch-size must be an integer ≥ 1, not ${opts.batchSize}`);
  // A resumed run continues its own config.json and spec.json: check it before anything is created or prepared.
  const resumed = opts.resume ? resumedRun(ex, opts) : undefined;
  let bridge: typeof import('@llmed/bridge');
  try {
    bridge = await import('@llmed/bridge');
  } catch (e) {
    throw new LlmedError('not-built', `the Python bridge is not available: ${(e as Error).message}`, { exitCode: 3 });
  }
  if (opts.launch) bridge.checkLaunch(opts.launch);
  const multiNode = (opts.launch?.nnodes ?? 1) > 1;
  const firstNode = (opts.launch?.nodeRank ?? 0) === 0;
  if (multiNode && !opts.runDir && !opts.resume) throw new LlmedError('usage', `--nnodes ${opts.launch?.nnodes} needs --run-dir (the same folder, on a shared file system, for every node)`, { hint: 'under SLURM: --run-dir runs/<experiment>/$SLURM_JOB_ID' });
  checkRequirements(ex);
  // Several nodes would race to prepare one cache: it must be there before they start.
  if (multiNode && !existsSync(join(preparedDir(ex.ws.root, ex.name), 'pairs.json'))) {
    throw new LlmedError('data', `the prepared dataset of '${ex.name}' is not there yet; a multi-node job does not prepare it`, { where: preparedDir(ex.ws.root, ex.name), hint: `run \`llmed data prepare ${ex.name}\` once before starting the nodes` });
  }
  const prepared = await runPrepare(ex.ws.root, ex.name, ex.config);
  const config = resumed?.config ?? structuredClone(ex.config);
  if (opts.iterations && !resumed) config.train.iterations = opts.iterations;
  if (opts.batchSize && !opts.resume) config.train.batchSize = opts.batchSize;
  const runDir = resolve(opts.resume ?? opts.runDir ?? join(ex.ws.root, 'runs', ex.name, timestamp()));
  // One writer per run folder: the first node holds its lock; the other nodes of a multi-node job only
  // start their ranks (rank 0, on the first node, is the only one that writes there).
  const body = () => trainInto(ex, opts, bridge, config, prepared, runDir, firstNode);
  return firstNode ? withWriteLock(runDir, body) : body();
}

/** The run itself (on the first node, holding the run folder's write lock). */
async function trainInto(ex: Loaded & Experiment, opts: TrainOptions, bridge: typeof import('@llmed/bridge'), config: ExperimentConfig, prepared: { dir: string }, runDir: string, firstNode: boolean): Promise<string> {
  const createdRunDir = firstNode && !existsSync(runDir);
  if (firstNode) mkdirSync(runDir, { recursive: true });
  if (!opts.resume && firstNode) {
    writeFileSync(join(runDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    writeFileSync(join(runDir, 'spec.json'), `${JSON.stringify(runFolderSpec(ex.spec satisfies ModelSpec), null, 2)}\n`);
  }
  const bar = new Progress(`training ${ex.name}`, config.train.iterations);
  let said = false;
  const trainer = opts.launch
    ? (o: Parameters<typeof bridge.trainRun>[0]) => bridge.trainRunDistributed({ ...o, launch: opts.launch! })
    : bridge.trainRun;
  const result = await trainer({
    workspaceRoot: ex.ws.root,
    experiment: ex.name,
    configFile: ex.configFile,
    config,
    spec: ex.spec,
    plugins: ex.registry.pythonEntries(),
    preparedDir: prepared.dir,
    runDir,
    resume: Boolean(opts.resume),
    device: opts.device ?? 'auto',
    trainerOptions: { ...(opts.batchSize && opts.resume ? { batchSize: opts.batchSize } : {}), ...(opts.threads ? { threads: opts.threads } : {}) },
    ...(opts.threadsLater ? { threadsLater: opts.threadsLater } : {}),
    onProgress: (s: TrainStatus) => {
      if (!said && s.world_size && s.world_size > 1 && s.global_batch) {
        said = true;
        bar.done(`training on ${s.world_size} processes (${s.backend ?? 'torchrun'}): global batch ${s.global_batch} = ${s.global_batch / s.world_size} per process × ${s.world_size}`);
      }
      const terms = Object.entries(s.terms ?? {}).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(' ');
      const detail = [s.loss != null ? `loss ${s.loss.toFixed(4)}${terms ? ` (${terms})` : ''}` : '', s.val_dice != null ? `val Dice ${s.val_dice.toFixed(3)}` : '', s.phases > 1 ? `cascade step ${s.phase}/${s.phases}` : ''].filter(Boolean).join('  ');
      bar.update(s.step, detail);
    },
  }).catch((e: unknown) => {
    throw failedRun(e, { runDir, createdRunDir, configFile: ex.configFile });
  });
  bar.done();
  const best = result.best ? `; best validation ${result.best.metric} ${result.best.value.toFixed(3)} at step ${result.best.step}` : '';
  const dice = result.val_dice != null ? `; validation Dice ${result.val_dice.toFixed(3)}${result.initial_dice != null ? ` (unregistered ${result.initial_dice.toFixed(3)})` : ''}` : '';
  console.log(`training ${result.state} at step ${result.step}/${result.total} after ${formatSeconds(result.elapsed_s)}${dice}${best}${result.message ? ` — ${result.message}` : ''}`);
  if (result.interrupted) {
    // A stopped run must not look finished to a script (or to `demo`, which would go on to export it).
    const rel = relative(process.cwd(), runDir) || runDir;
    throw new LlmedError('cancelled', `training was interrupted at step ${result.step}/${result.total}; checkpoints/last is saved`, { where: rel, hint: `continue it with: llmed train ${ex.name} --resume ${rel}`, exitCode: 130 });
  }
  return runDir;
}

/** The run `--resume` names, checked: a run folder of a registered plugin set, and no flag it would ignore. */
function resumedRun(ex: Loaded & Experiment, opts: TrainOptions): { config: ExperimentConfig } {
  const runDir = resolve(opts.resume!);
  if (!isRunFolder(runDir)) {
    throw new LlmedError('checkpoint', 'cannot resume: not a run folder (needs spec.json, config.json and checkpoints/)', { where: runDir, hint: 'name a folder written by `llmed train` (runs/<experiment>/<timestamp>)' });
  }
  if (opts.iterations) {
    throw new LlmedError('usage', '--iterations cannot be combined with --resume: a resumed run continues the iterations of its own config.json', {
      where: join(runDir, 'config.json'), hint: 'drop --iterations to finish the run as it was planned, or start a new run with --iterations',
    });
  }
  if (opts.runDir && resolve(opts.runDir) !== runDir) throw new LlmedError('usage', '--run-dir cannot be combined with --resume (the run folder is the one resumed)');
  const specFile = join(runDir, 'spec.json');
  checkSpecPlugins(readJsonFile(specFile) as ModelSpec, ex.registry, specFile);
  const configFile = join(runDir, 'config.json');
  const config = readJsonFile(configFile) as ExperimentConfig;
  if (!Number.isInteger(config?.train?.iterations) || config.train.iterations < 1) throw new LlmedError('config', 'train.iterations must be a positive integer', { where: configFile });
  return { config };
}

/** Error kinds that come from what a config asks for (not from the run's state): the config file is named. */
const CONFIG_KINDS = new Set(['config', 'shape', 'plugin']);

/**
 * What a failed training run leaves and says. A run folder this call created that holds no checkpoint yet
 * is removed (nothing half-made stays behind); an error caused by the config — a plugin that cannot be
 * built from its options, a shape that does not fit — names the experiment's config file rather than the
 * run folder's copy of it.
 */
export function failedRun(e: unknown, run: { runDir: string; createdRunDir: boolean; configFile: string }): unknown {
  const ckpt = join(run.runDir, 'checkpoints');
  const hasCheckpoint = existsSync(ckpt) && readdirSync(ckpt).some((f) => f.endsWith('.json') || f.endsWith('.safetensors'));
  const removed = run.createdRunDir && !hasCheckpoint;
  if (removed) rmSync(run.runDir, { recursive: true, force: true });
  if (!isLlmedError(e)) return e;
  const inRun = !e.where || resolve(e.where).startsWith(resolve(run.runDir));
  const where = CONFIG_KINDS.has(e.kind) && inRun ? relative(process.cwd(), run.configFile) || run.configFile : e.where;
  const hint = [e.hint, removed ? `the run folder ${relative(process.cwd(), run.runDir) || run.runDir} was removed (no checkpoint had been written)` : ''].filter(Boolean).join('; ');
  if (where === e.where && !removed) return e;
  const out = new LlmedError(e.kind, e.message, { where, hint: hint || undefined, cause: e, exitCode: e.exitCode });
  out.stack = `${out.stack}\ncaused by: ${e.stack}`; // --debug still shows where it came from
  return out;
}
