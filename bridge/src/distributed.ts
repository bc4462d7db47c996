/**
 * trainRunDistributed: one training run on several processes, started by PyTorch's own launcher.
 *
 * `llmed train <experiment> --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]`
 * runs, on each node,
 *
 *     python -m torch.distributed.run --nproc-per-node N ... --max-restarts 0 -m llmed.distributed
 *            <run> <spec.json> <config.json> <prepared> <options.json>
 *
 * (bridge/python/llmed/distributed.py: DDP, sharding, rank 0 writes). torchrun starts and watches the
 * processes; this side follows the run the way trainRun follows a pythonia thread, but through files,
 * since no Python process of the job is Node's to call:
 *
 * - progress: rank 0 keeps `<run>/status.json` (the trainer's status, atomically replaced) and
 *   log.jsonl; Node polls status.json and calls `onProgress` with it, exactly as trainRun does;
 * - failure: a rank whose run fails writes `rank-<r>.json` into a temporary folder of this node
 *   (`LLMED_RANK_ERROR_DIR`) and exits; torchrun then stops the others. The job's error names the first
 *   rank that failed by itself (not one that only lost its peers), or the rank torchrun saw killed by
 *   a signal (its failure summary), so `kill -9` of any rank ends in one clear line;
 * - Ctrl-C / SIGTERM: torchrun runs in its own session (the terminal's SIGINT would make it kill the
 *   ranks mid-step), Node creates `<run>/stop-request`, the ranks agree to stop after the same step and
 *   rank 0 saves `checkpoints/last`. A second Ctrl-C terminates torchrun, which terminates the ranks.
 *   Every rank also ends itself when torchrun or this Node process disappears.
 *
 * Nothing here is specific to registration: the trainer class is the Python side's choice
 * (`trainerOptions.trainer`, `module:Class`), so report generation uses the same launcher.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { LlmedError } from '@llmed/core';
import { BRIDGE_PYTHON_ROOT, PythonBridgeError, resolvePythonBin } from './session.ts';
import { pause, prepareRunFolder, specPlugins, trainingFailure, trainResult, type TrainResult, type TrainRunOptions } from './train.ts';
import type { TrainStatus } from './types.ts';

/** Where and how many processes: torchrun's own flags. */
export interface DistributedLaunch {
  /** Processes on this node (one per GPU on CUDA). */
  nprocPerNode: number;
  /** Nodes in the job (default 1). */
  nnodes?: number;
  /** This node's index, 0 .. nnodes-1 (default 0). */
  nodeRank?: number;
  /** Address of node 0 (default: a single-node job on this machine with a free port). */
  masterAddr?: string;
  /** Port on node 0 (default 29500 when masterAddr is given). */
  masterPort?: number;
}

export interface DistributedTrainOptions extends TrainRunOptions {
  launch: DistributedLaunch;
  /** Called once torchrun has started (its pid). */
  onLaunch?: (info: { pid: number; runDir: string }) => void;
  /** Pass everything torchrun and the ranks print through to stderr (default: only the ranks' own lines). */
  verbose?: boolean;
}

/** Rank error record written by llmed.distributed.write_rank_error. */
export interface RankError {
  rank: number;
  localRank: number;
  pid: number;
  kind: string;
  message: string;
  where?: string | null;
  hint?: string | null;
  traceback?: string | null;
  /** True when the error only says that another rank went away. */
  peer: boolean;
  time: number;
}

/** One entry of torchrun's failure summary. */
export interface TorchrunFailure {
  rank: number;
  localRank: number;
  exitcode: number;
  pid: number;
  /** Listed under "Root Cause (first observed failure)". */
  rootCause: boolean;
}

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };
const STATUS_FILE = 'status.json';
const STOP_FILE = 'stop-request';

function positiveInteger(value: number | undefined, flag: string, min: number): void {
  if (value !== undefined && (!Number.isInteger(value) || value < min)) {
    throw new LlmedError('usage', `--${flag} must be an integer ≥ ${min}, not ${value}`);
  }
}

/** Check the flags together; a mistake is one usage error naming the flag. */
export function checkLaunch(launch: DistributedLaunch): Required<Pick<DistributedLaunch, 'nprocPerNode' | 'nnodes' | 'nodeRank'>> & DistributedLaunch {
  positiveInteger(launch.nprocPerNode, 'nproc-per-node', 1);
  positiveInteger(launch.nnodes, 'nnodes', 1);
  positiveInteger(launch.nodeRank, 'node-rank', 0);
  positiveInteger(launch.masterPort, 'master-port', 1);
  if (launch.masterPort !== undefined && launch.masterPort > 65535) throw new LlmedError('usage', `--master-port must be a port number (1-65535), not ${launch.masterPort}`);
  const nnodes = launch.nnodes ?? 1;
  const nodeRank = launch.nodeRank ?? 0;
  if (nodeRank >= nnodes) throw new LlmedError('usage', `--node-rank ${nodeRank} is not below --nnodes ${nnodes}`, { hint: 'node ranks go from 0 to nnodes-1' });
  if (nnodes > 1 && !launch.masterAddr) throw new LlmedError('usage', `--nnodes ${nnodes} needs --master-addr (the address of node 0)`, { hint: 'under SLURM: --master-addr $(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)' });
  return { ...launch, nnodes, nodeRank };
}

/** torchrun's arguments for a launch (everything before the entry module). */
export function torchrunArguments(launch: DistributedLaunch): string[] {
  const l = checkLaunch(launch);
  const where = l.masterAddr
    ? ['--nnodes', String(l.nnodes), '--node-rank', String(l.nodeRank), '--master-addr', l.masterAddr, '--master-port', String(l.masterPort ?? 29500)]
    : ['--standalone', '--nnodes', '1'];
  // No restarts: a failed rank ends the job (llmed resumes from checkpoints/last, on request).
  return [...where, '--nproc-per-node', String(l.nprocPerNode), '--max-restarts', '0'];
}

/** The entries of torchrun's failure summary ("rank : 1 (local_rank: 1) / exitcode : -9 (pid: 123)"). */
export function parseTorchrunFailures(text: string): TorchrunFailure[] {
  const out: TorchrunFailure[] = [];
  const rootAt = text.lastIndexOf('Root Cause (first observed failure)');
  const re = /rank\s*:\s*(\d+)\s*\(local_rank:\s*(\d+)\)\s*\n\s*exitcode\s*:\s*(-?\d+)\s*\(pid:\s*(\d+)\)/g;
  for (const m of text.matchAll(re)) {
    out.push({ rank: Number(m[1]), localRank: Number(m[2]), exitcode: Number(m[3]), pid: Number(m[4]), rootCause: rootAt >= 0 && (m.index ?? 0) > rootAt });
  }
  return out;
}

function signalName(exitcode: number): string {
  return SIGNALS[-exitcode] ?? `signal ${-exitcode}`;
}

/**
 * The one error a failed job reports: the earliest rank that failed by itself (its own message and
 * kind), else the rank torchrun saw killed by a signal or exit without a report, else a rank that lost
 * its peers, else torchrun's exit status with the last lines it printed.
 */
export function jobFailure(records: RankError[], failures: TorchrunFailure[], exit: { code: number | null; signal: string | null }, worldSize: number, runDir: string, tail: string, localRanks: number[] = []): LlmedError {
  const resumeHint = `resume with --resume ${runDir} (from checkpoints/last; any world size)`;
  const own = records.filter((r) => !r.peer).sort((a, b) => a.time - b.time)[0];
  if (own) {
    const err = new PythonBridgeError({ kind: own.kind, message: `rank ${own.rank} of ${worldSize}: ${own.message}`, traceback: own.traceback, where: own.where ?? runDir, hint: own.hint ?? undefined }, 'training');
    return err;
  }
  const reported = new Set(records.map((r) => r.rank));
  const unreported = failures.filter((f) => !reported.has(f.rank));
  // Killed by a signal: prefer the root cause, and a signal other than the SIGTERM torchrun sends the rest.
  const killed = [...unreported].filter((f) => f.exitcode < 0).sort((a, b) => Number(b.rootCause) - Number(a.rootCause) || Number(a.exitcode === -15) - Number(b.exitcode === -15))[0];
  if (killed) {
    return new LlmedError('bridge', `rank ${killed.rank} of ${worldSize} (pid ${killed.pid}) was killed by ${signalName(killed.exitcode)}; torchrun stopped the other ranks`, { where: runDir, hint: `out of memory? killed by hand or by the scheduler? ${resumeHint}` });
  }
  const crashed = unreported.filter((f) => f.exitcode > 0).sort((a, b) => Number(b.rootCause) - Number(a.rootCause))[0];
  if (crashed) {
    return new LlmedError('bridge', `rank ${crashed.rank} of ${worldSize} (pid ${crashed.pid}) exited with code ${crashed.exitcode} before reporting an error`, { where: runDir, hint: `its last output:\n${tail}` });
  }
  const peer = [...records].sort((a, b) => a.time - b.time)[0];
  // Every record is a lost peer and torchrun's summary names no rank that died (it can end the job before it
  // has seen the killed rank's exit): a rank of this node that wrote no record is the one that stopped first.
  const silent = localRanks.filter((r) => !reported.has(r)).sort((a, b) => a - b)[0];
  if (peer && silent !== undefined) {
    return new LlmedError('bridge', `rank ${silent} of ${worldSize} stopped without reporting an error (killed or crashed; torchrun's summary does not say which); rank ${peer.rank} then lost its peers: ${peer.message}`, { where: runDir, hint: `out of memory? killed by hand or by the scheduler? ${resumeHint}` });
  }
  if (peer) {
    return new PythonBridgeError({ kind: peer.kind, message: `rank ${peer.rank} of ${worldSize}: ${peer.message}`, traceback: peer.traceback, where: runDir, hint: `another node's rank failed first: see its log. ${resumeHint}` }, 'training');
  }
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  return new LlmedError('bridge', `torchrun ${how} without a report from any rank`, { where: runDir, hint: `${resumeHint}; its last output:\n${tail}` });
}

function readRankErrors(dir: string): RankError[] {
  if (!existsSync(dir)) return [];
  const out: RankError[] = [];
  for (const name of readdirSync(dir)) {
    if (!/^rank-\d+\.json$/.test(name)) continue;
    try {
      out.push(JSON.parse(readFileSync(join(dir, name), 'utf8')) as RankError);
    } catch {
      // a record being written when the job ended: the rank's exit shows in torchrun's summary
    }
  }
  return out;
}

/** rank 0's status.json, when it is from this launch (not a resumed run's previous session). */
function readStatus(file: string, notBefore: number): TrainStatus | null {
  try {
    if (statSync(file).mtimeMs < notBefore) return null;
    return JSON.parse(readFileSync(file, 'utf8')) as TrainStatus;
  } catch {
    return null;
  }
}

/** Keeps the last lines of a stream, and forwards the ranks' own lines (not torchrun's agent log). */
class OutputTail {
  private lines: string[] = [];
  private partial = '';
  failureSeen = false;

  constructor(private readonly verbose: boolean) {}

  push(chunk: Buffer): void {
    const text = this.partial + chunk.toString('utf8');
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      this.lines.push(line);
      if (this.lines.length > 400) this.lines.shift();
      // torchrun's agent logs in glog format (I/W/E + date); once it reports a failure, the rest is its
      // summary and traceback, which the job's one error line replaces (kept for --debug).
      const agent = /^[IWE]\d{4} \d\d:\d\d:\d\d/.test(line) || /^\*{20,}$/.test(line) || line.startsWith('Setting OMP_NUM_THREADS');
      if (/^E\d{4} /.test(line)) this.failureSeen = true;
      if (this.verbose || (!agent && !this.failureSeen)) process.stderr.write(`${line}\n`);
    }
  }

  text(): string {
    return [...this.lines, this.partial].join('\n');
  }

  last(n: number): string {
    return this.lines.slice(-n).join('\n');
  }
}

export async function trainRunDistributed(opts: DistributedTrainOptions): Promise<TrainResult> {
  const launch = checkLaunch(opts.launch);
  const torchrun = torchrunArguments(launch);
  const worldSize = launch.nprocPerNode * launch.nnodes;
  // Node 0 writes the run folder; the other nodes use it (a shared file system) and pass their own copies
  // of the config and spec, so no two nodes write the same file.
  const writer = launch.nodeRank === 0;
  const folder = prepareRunFolder(opts, writer);
  const { runDir } = folder;
  const pythonBin = resolvePythonBin(opts.workspaceRoot);
  const scratch = mkdtempSync(join(tmpdir(), 'llmed-torchrun-'));
  const errorDir = join(scratch, 'rank-errors');
  mkdirSync(errorDir);
  const statusFile = join(runDir, STATUS_FILE);
  const stopFile = join(runDir, STOP_FILE);
  let child: ChildProcess | null = null;
  const killChild = () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  let stopRequested = false;
  let gaveUp = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stopRequested) {
      stopRequested = true;
      process.stderr.write(`\n${signal}: stopping all ranks after the current step and saving checkpoints/last (press Ctrl-C again to give up waiting)\n`);
      try {
        writeFileSync(stopFile, `${signal} ${new Date().toISOString()}\n`);
      } catch (e) {
        process.stderr.write(`cannot write ${stopFile} (${(e as Error).message}); terminating torchrun instead\n`);
        killChild();
      }
    } else {
      gaveUp = true;
      killChild();
    }
  };
  const handleSignals = opts.handleSignals ?? true;
  if (handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  process.on('exit', killChild);
  try {
    let specPath = folder.specPath;
    let configPath = folder.configPath;
    if (!writer && !folder.resume) {
      specPath = join(scratch, 'spec.json');
      configPath = join(scratch, 'config.json');
      writeFileSync(specPath, `${JSON.stringify(opts.spec, null, 2)}\n`);
      writeFileSync(configPath, `${JSON.stringify(opts.config, null, 2)}\n`);
    }
    const optionsPath = join(scratch, 'options.json');
    // Each rank builds the nodes from the registered plugins by id (the run folder's spec.json names no code).
    const trainerOptions = { ...opts.trainerOptions, device: opts.device ?? 'auto', resume: folder.resume, workspaceRoot: opts.workspaceRoot, plugins: opts.plugins ?? specPlugins(opts.spec) };
    writeFileSync(optionsPath, `${JSON.stringify(trainerOptions)}\n`);
    if (writer) {
      rmSync(statusFile, { force: true });
      rmSync(stopFile, { force: true });
    }
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PYTHONPATH: [BRIDGE_PYTHON_ROOT, process.env.PYTHONPATH].filter(Boolean).join(delimiter),
      PYTHONUNBUFFERED: '1',
      LLMED_RANK_ERROR_DIR: errorDir,
      LLMED_PARENT_PID: String(process.pid),
      // The cores of this node shared among its ranks (torchrun's own default is 1 thread each).
      OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / launch.nprocPerNode))),
    };
    const args = ['-m', 'torch.distributed.run', ...torchrun, '-m', 'llmed.distributed', runDir, specPath, configPath, resolve(opts.preparedDir), optionsPath];
    const launchedAt = Date.now() - 1000;
    const proc = spawn(pythonBin, args, { cwd: opts.workspaceRoot, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const output = new OutputTail(opts.verbose ?? false);
    proc.stdout?.on('data', (c: Buffer) => output.push(c));
    proc.stderr?.on('data', (c: Buffer) => output.push(c));
    const exited = new Promise<{ code: number | null; signal: string | null }>((done, fail) => {
      proc.once('error', (e) => fail(new LlmedError('bridge', `cannot start torchrun with ${pythonBin}: ${e.message}`, { hint: 'run `npm run setup` (the venv has torch, which provides torchrun)' })));
      proc.once('close', (code, signal) => done({ code, signal }));
    });
    exited.catch(() => undefined);
    if (proc.pid) opts.onLaunch?.({ pid: proc.pid, runDir });

    const pollMs = opts.pollMs ?? 500;
    let seen = '';
    let started = false;
    let last: TrainStatus | null = null;
    let exit: { code: number | null; signal: string | null } | null = null;
    for (;;) {
      const status = readStatus(statusFile, launchedAt);
      if (status) {
        last = status;
        if (!started) {
          started = true;
          opts.onStart?.({ runDir, pid: status.pid });
        }
        const key = `${status.state}:${status.step}:${status.phase}:${status.val_dice}`;
        if (key !== seen) {
          seen = key;
          opts.onProgress?.(status);
        }
      }
      if (exit) break;
      const nap = pause(pollMs);
      try {
        exit = await Promise.race([nap.done.then(() => null), exited]);
      } finally {
        nap.cancel();
      }
    }
    if (last?.state === 'error' && !readRankErrors(errorDir).length) throw trainingFailure(last, runDir, `rank 0 of ${worldSize}: ${last.message ?? 'training failed'}`);
    if (exit.code === 0 && (last?.state === 'done' || last?.state === 'stopped')) {
      return trainResult({ ...last, state: last.state }, runDir, stopRequested);
    }
    if (exit.code === 0) {
      throw new LlmedError('bridge', `the job ended without a final status from rank 0 (${statusFile})`, { where: runDir, hint: launch.nodeRank > 0 ? 'a node other than node 0 sees rank 0\'s status only when the run folder is on a file system all nodes share' : undefined });
    }
    if (gaveUp) {
      throw new LlmedError('bridge', `interrupted twice: terminated the ranks without waiting for the clean save; checkpoints/last is from step ${last?.step ?? 0} or earlier`, { where: runDir, hint: `resume later with --resume ${runDir}` });
    }
    const localRanks = Array.from({ length: launch.nprocPerNode }, (_, i) => launch.nodeRank * launch.nprocPerNode + i);
    throw jobFailure(readRankErrors(errorDir), parseTorchrunFailures(output.text()), exit, worldSize, runDir, output.last(15), localRanks);
  } finally {
    if (handleSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    killChild();
    process.off('exit', killChild);
    if (writer) rmSync(stopFile, { force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
}
