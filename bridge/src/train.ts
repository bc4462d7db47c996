/**
 * trainRun: one training run driven from Node.
 *
 * The run lives in a Python thread (bridge/python/llmed/train.py). Node starts it, then polls
 * `status()` every ~0.5 s: no bridge call blocks for long, progress reaches `onProgress`, and a dead
 * Python process is noticed at once (the session races every wait against the child's exit).
 * Ctrl-C / SIGTERM ask the trainer to stop; it finishes the step, saves `checkpoints/last` and ends in
 * state `stopped`, which this resolves with. A second Ctrl-C gives up waiting. Python is always shut
 * down in `finally`, so Node can exit.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LlmedError, writeFileAtomicSync, runFolderSpec, specNodes, type AnyModelSpec, type ExperimentConfig, type PythonEntry, type ReportExperimentConfig } from '@llmed/core';
import { BRIDGE_PYTHON_ROOT, PythonBridgeError, PythonSession } from './session.ts';
import type { BestMetric, TrainStatus } from './types.ts';

export interface TrainRunOptions {
  workspaceRoot: string;
  experiment: string;
  /** The experiment's config file (for messages). */
  configFile: string;
  /** The resolved experiment config; written to `<run>/config.json` for a new run. */
  config: ExperimentConfig | ReportExperimentConfig;
  /**
   * The composed model; written to `<run>/spec.json` for a new run (plugins by id, without python paths). A
   * report-generation spec trains with `trainerOptions.trainer = 'llmed.report:ReportTrainer'`.
   */
  spec: AnyModelSpec;
  /**
   * The registered plugins' python entries by id (`registry.pythonEntries()`): where Python takes each
   * node's code from. Default: the entries of `spec` (composed in memory, so trusted). A resumed run's
   * spec.json is never a source of code.
   */
  plugins?: Record<string, PythonEntry>;
  /** Prepared dataset folder (`llmed data prepare`). */
  preparedDir: string;
  /** Run folder; default `runs/<experiment>/<timestamp>/` under the workspace. */
  runDir?: string;
  /**
   * Continue a run from its `checkpoints/last` (true: the run in `runDir`; a string: that run folder).
   * A resumed run uses its own spec.json and config.json, so it continues exactly what it was.
   */
  resume?: boolean | string;
  device?: 'auto' | 'cpu' | 'cuda';
  /** Called after every poll that saw a change. */
  onProgress?: (status: TrainStatus) => void;
  /** Called once Python has started the run. */
  onStart?: (info: { runDir: string; pid: number }) => void;
  /** Poll interval in milliseconds (default 500). */
  pollMs?: number;
  /**
   * More trainer options (train.py): `logEvery`, `valPairs`, `threads`, `ampDtype` ('auto'|'bf16'|'fp16'|'fp32'),
   * `phaseStart` ('best'|'last'), `timeBudgetMinutes` (overrides the config's).
   */
  trainerOptions?: Record<string, unknown>;
  /** When this resolves, the run switches to that many intra-op threads (from its next step on). */
  threadsLater?: Promise<number>;
  /** Use this open session (left open afterwards) instead of starting and closing one. */
  session?: PythonSession;
  /** Handle SIGINT/SIGTERM by stopping cleanly (default true). */
  handleSignals?: boolean;
}

export interface TrainResult {
  runDir: string;
  /** `done`, or `stopped` (on request or by the time budget; see `reason`). */
  state: 'done' | 'stopped';
  /** Same as `state` (the CLI reads this name). */
  status: 'done' | 'stopped';
  reason: string | null;
  step: number;
  total: number;
  phase: number;
  best: BestMetric | null;
  loss: number | null;
  val_dice: number | null;
  /** Validation Dice of the unregistered pairs, for comparison with val_dice. */
  initial_dice: number | null;
  elapsed_s: number;
  message: string | null;
  /** True when a signal stopped the run. */
  interrupted: boolean;
}

/** `20260123-104512`: sortable, no characters a file system minds. */
export function runTimestamp(date = new Date()): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\..+/, '').replace('T', '-');
}

/** The python entries of a spec composed in memory (trusted), by plugin id. */
export function specPlugins(spec: AnyModelSpec): Record<string, PythonEntry> {
  return Object.fromEntries(specNodes(spec).filter((n) => n?.python).map((n) => [n.id, n.python!]));
}

/** sys.path folders for a spec composed in memory (the bridge package and its plugins' roots). */
export function specImportPaths(spec: AnyModelSpec): string[] {
  return pluginImportPaths(specPlugins(spec));
}

/** Folders to put on sys.path: the bridge package and the python root of every plugin in the table. */
export function pluginImportPaths(plugins: Record<string, PythonEntry>): string[] {
  return [...new Set([BRIDGE_PYTHON_ROOT, ...Object.values(plugins).map((e) => e.root)])];
}

function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomicSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** A sleep that can be cancelled, so no timer outlives the run and keeps Node alive. */
export function pause(ms: number): { done: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((r) => { timer = setTimeout(r, ms); });
  return { done, cancel: () => clearTimeout(timer) };
}

/**
 * The run folder of a run about to start: a new one gets the config and spec; a resumed one must have
 * its own (`write: false` only checks, for a node that is not the one writing the run folder).
 */
export function prepareRunFolder(opts: Pick<TrainRunOptions, 'workspaceRoot' | 'experiment' | 'config' | 'spec' | 'runDir' | 'resume'>, write = true): { runDir: string; resume: boolean; specPath: string; configPath: string } {
  const runDir = resolve(typeof opts.resume === 'string' ? opts.resume : opts.runDir ?? join(opts.workspaceRoot, 'runs', opts.experiment, runTimestamp()));
  const resume = Boolean(opts.resume);
  const specPath = join(runDir, 'spec.json');
  const configPath = join(runDir, 'config.json');
  if (resume) {
    for (const file of [specPath, configPath]) {
      if (!existsSync(file)) throw new LlmedError('checkpoint', `cannot resume: ${file} is missing`, { where: runDir, hint: 'name a run folder written by `llmed train` (runs/<experiment>/<timestamp>)' });
    }
  } else if (write) {
    mkdirSync(runDir, { recursive: true });
    writeJsonAtomic(configPath, opts.config);
    writeJsonAtomic(specPath, runFolderSpec(opts.spec));
  }
  return { runDir, resume, specPath, configPath };
}

/** The error of a run that ended in state `error`. */
export function trainingFailure(status: TrainStatus, runDir: string, message = status.message ?? 'training failed'): PythonBridgeError {
  return new PythonBridgeError({
    kind: status.kind ?? 'bridge',
    message,
    traceback: status.traceback,
    where: status.where ?? runDir,
    hint: status.hint ?? (status.kind === 'nan' ? 'lower train.lr, check the prepared data for NaN/Inf, or resume from checkpoints/last' : undefined),
  }, 'training');
}

/** The result of a run that ended in state `done` or `stopped`. */
export function trainResult(status: TrainStatus & { state: 'done' | 'stopped' }, runDir: string, interrupted: boolean): TrainResult {
  return {
    runDir,
    state: status.state,
    status: status.state,
    reason: status.reason,
    step: status.step,
    total: status.total,
    phase: status.phase,
    best: status.best,
    loss: status.loss,
    val_dice: status.val_dice,
    initial_dice: status.initial_dice ?? null,
    elapsed_s: status.elapsed_s,
    message: status.message,
    interrupted,
  };
}

export async function trainRun(opts: TrainRunOptions): Promise<TrainResult> {
  const { runDir, resume, specPath, configPath } = prepareRunFolder(opts);

  const session = opts.session ?? (await PythonSession.open({ workspaceRoot: opts.workspaceRoot }));
  const ownSession = !opts.session;
  let stopRequested = false;
  let stopSent = false;
  let giveUp: ((e: Error) => void) | null = null;
  const gaveUp = new Promise<never>((_, reject) => {
    giveUp = reject;
  });
  gaveUp.catch(() => undefined);
  let lastStep = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stopRequested) {
      stopRequested = true;
      process.stderr.write(`\n${signal}: stopping after the current step and saving checkpoints/last (press Ctrl-C again to give up waiting)\n`);
    } else {
      giveUp?.(new LlmedError('bridge', `interrupted twice: stopped waiting for the clean save; checkpoints/last is from step ${lastStep} or earlier`, { where: runDir, hint: `resume later with --resume ${runDir}` }));
    }
  };
  const handleSignals = opts.handleSignals ?? true;
  if (handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  try {
    const plugins = opts.plugins ?? specPlugins(opts.spec);
    await session.addImportPaths(pluginImportPaths(plugins));
    const trainerOptions = { ...opts.trainerOptions, device: opts.device ?? 'auto', resume, workspaceRoot: opts.workspaceRoot, plugins };
    const started = await session.startTraining(runDir, specPath, configPath, resolve(opts.preparedDir), trainerOptions);
    opts.onStart?.({ runDir, pid: started.pid });

    const pollMs = opts.pollMs ?? 500;
    let seen = '';
    let threadsNow: number | undefined;
    let threadsSent = false;
    opts.threadsLater?.then((n) => { threadsNow = n; }, () => {});
    for (;;) {
      if (stopRequested && !stopSent) {
        stopSent = true;
        await Promise.race([session.stop(), gaveUp]);
      }
      if (threadsNow !== undefined && !threadsSent) {
        threadsSent = true;
        await Promise.race([session.setThreads(threadsNow), gaveUp]);
      }
      const status = await Promise.race([session.status(), gaveUp]);
      lastStep = status.step;
      const key = `${status.state}:${status.step}:${status.phase}:${status.val_dice}`;
      if (key !== seen) {
        seen = key;
        opts.onProgress?.(status);
      }
      if (status.state === 'error') throw trainingFailure(status, runDir);
      if (status.state === 'done' || status.state === 'stopped') return trainResult({ ...status, state: status.state }, runDir, stopRequested);
      const nap = pause(pollMs);
      try {
        await Promise.race([nap.done, session.exited, gaveUp]);
      } finally {
        nap.cancel();
      }
    }
  } catch (e) {
    if (e instanceof LlmedError && e.kind === 'bridge' && !session.isOpen && !(e instanceof PythonBridgeError)) {
      throw new LlmedError('bridge', `training stopped: ${e.message}`, { where: runDir, hint: `${e.hint ?? ''}${e.hint ? '; ' : ''}resume with --resume ${runDir}`, cause: e });
    }
    throw e;
  } finally {
    if (handleSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    if (ownSession) await session.close();
  }
}
