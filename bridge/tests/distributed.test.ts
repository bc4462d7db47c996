/**
 * Training under torchrun, driven from TypeScript: the tiny composed model of the bridge tests on
 * 2 CPU processes with gloo. Progress comes from rank 0's status.json; a rank killed with SIGKILL and a
 * rank that raises each end the job with one error naming the rank; the killed run resumes on one
 * process. The launch flags and the choice of the job's error are checked on their own first (the
 * failure summary below is torchrun 2.13's, copied from a real run).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLlmedError, type ExperimentConfig, type ModelSpec } from '@llmed/core';
import { jobFailure, parseTorchrunFailures, PythonBridgeError, torchrunArguments, trainRunDistributed, type RankError, type TrainStatus } from '../src/index.ts';
import { logEvents, tinyExperiment, WORKSPACE } from './tiny-experiment.ts';

const SUMMARY = `torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
llmed.distributed FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-01_22:24:50
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 11345)  (SIGTERM)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 11345
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-01_22:24:50
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 11347)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 11347
============================================================`;

function rankError(rank: number, message: string, peer: boolean, time: number): RankError {
  return { rank, localRank: rank, pid: 100 + rank, kind: 'data', message, peer, time, traceback: 'Traceback ...' };
}

describe('torchrun launch', () => {
  it('starts a single-node job standalone and a multi-node job at node 0\'s address', () => {
    expect(torchrunArguments({ nprocPerNode: 2 })).toEqual(['--standalone', '--nnodes', '1', '--nproc-per-node', '2', '--max-restarts', '0']);
    expect(torchrunArguments({ nprocPerNode: 4, nnodes: 2, nodeRank: 1, masterAddr: 'node001', masterPort: 29400 }))
      .toEqual(['--nnodes', '2', '--node-rank', '1', '--master-addr', 'node001', '--master-port', '29400', '--nproc-per-node', '4', '--max-restarts', '0']);
  });

  it('refuses flags that do not fit together with one usage error naming the flag', () => {
    const usage = (f: () => unknown, re: RegExp) => {
      try {
        f();
        throw new Error('no error');
      } catch (e) {
        expect(isLlmedError(e) && e.kind === 'usage' && re.test(e.message), String(e)).toBe(true);
      }
    };
    usage(() => torchrunArguments({ nprocPerNode: 0 }), /--nproc-per-node must be an integer ≥ 1/);
    usage(() => torchrunArguments({ nprocPerNode: 1.5 }), /--nproc-per-node/);
    usage(() => torchrunArguments({ nprocPerNode: 2, nnodes: 2 }), /needs --master-addr/);
    usage(() => torchrunArguments({ nprocPerNode: 2, nnodes: 2, nodeRank: 2, masterAddr: 'a' }), /--node-rank 2 is not below --nnodes 2/);
    usage(() => torchrunArguments({ nprocPerNode: 2, masterAddr: 'a', masterPort: 70000 }), /--master-port/);
  });

  it('reads torchrun\'s failure summary and names the rank that failed first by itself', () => {
    const failures = parseTorchrunFailures(SUMMARY);
    expect(failures).toEqual([
      { rank: 0, localRank: 0, exitcode: -15, pid: 11345, rootCause: false },
      { rank: 1, localRank: 1, exitcode: -9, pid: 11347, rootCause: true },
    ]);
    const exit = { code: 1, signal: null };
    // A rank killed by a signal, the others stopped by torchrun: the killed one.
    expect(jobFailure([], failures, exit, 2, '/run', '').message).toBe('rank 1 of 2 (pid 11347) was killed by SIGKILL; torchrun stopped the other ranks');
    // A rank's own error wins over ranks that lost their peers, whatever came first.
    const own = jobFailure([rankError(0, 'RuntimeError: Connection closed by peer', true, 1), rankError(1, 'pairs.json is gone', false, 2)], [], exit, 2, '/run', '');
    expect(own).toBeInstanceOf(PythonBridgeError);
    expect(own.message).toBe('rank 1 of 2: pairs.json is gone');
    expect(own.kind).toBe('data');
    // Only lost peers (the cause was on another node): the earliest of them, saying so.
    const peer = jobFailure([rankError(3, 'Connection closed by peer', true, 5), rankError(2, 'Connection reset by peer', true, 4)], [], exit, 4, '/run', '');
    expect(peer.message).toBe('rank 2 of 4: Connection reset by peer');
    expect(peer.hint).toMatch(/another node/);
    // Only lost peers and a summary that names no dead rank, on one node: the local rank without a record.
    const silent = jobFailure([rankError(0, 'RuntimeError: Connection closed by peer', true, 1)], [{ rank: 0, localRank: 0, exitcode: 1, pid: 100, rootCause: true }], exit, 2, '/run', '', [0, 1]);
    expect(silent.message).toBe('rank 1 of 2 stopped without reporting an error (killed or crashed; torchrun\'s summary does not say which); rank 0 then lost its peers: RuntimeError: Connection closed by peer');
    expect(jobFailure([], [], { code: 1, signal: null }, 2, '/run', 'ImportError: x').message).toBe('torchrun exited with code 1 without a report from any rank');
  });
});

describe('trainRunDistributed on 2 CPU processes (gloo)', () => {
  let tmp: string;
  let prepared: string;
  let config: ExperimentConfig;
  let spec: ModelSpec;
  const base = () => ({ workspaceRoot: WORKSPACE, experiment: 'bridge-test', configFile: join(tmp, 'config.json'), config, spec, preparedDir: prepared, device: 'cpu' as const, pollMs: 100, handleSignals: false });

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'llmed-distributed-'));
    ({ prepared, config, spec } = await tinyExperiment(tmp, { iterations: 3, validateEvery: 1, checkpointEvery: 1 }));
  });

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('trains, with progress from rank 0 that says the global batch', async () => {
    const runDir = join(tmp, 'runs', 'two');
    const seen: TrainStatus[] = [];
    const result = await trainRunDistributed({ ...base(), runDir, launch: { nprocPerNode: 2 }, onProgress: (s) => seen.push(s) });
    expect(result).toMatchObject({ state: 'done', step: 3, total: 3 });
    expect(result.best?.metric).toBe('dice');
    expect(seen.at(-1)).toMatchObject({ state: 'done', rank: 0, world_size: 2, global_batch: 2, backend: 'gloo' });
    const events = logEvents(runDir);
    expect(events.filter((e) => e.event === 'start')).toEqual([expect.objectContaining({ worldSize: 2, batchSize: 1, globalBatch: 2, backend: 'gloo' })]);
    expect(events.filter((e) => e.event === 'step')).toHaveLength(3);
    expect(JSON.parse(readFileSync(join(runDir, 'checkpoints', 'last.json'), 'utf8'))).toMatchObject({ step: 3, samplesSeen: 6, worldSize: 2 });
  }, 240_000);

  it('ends the job when a rank is killed with SIGKILL, naming it; --resume continues on one process', async () => {
    const runDir = join(tmp, 'runs', 'killed');
    const long = { ...config, train: { ...config.train, iterations: 100_000, validateEvery: 100_000, checkpointEvery: 2 } };
    let torchrun = 0;
    let killedAt = 0;
    let killedStep = 0;
    const run = trainRunDistributed({
      ...base(), config: long, runDir, launch: { nprocPerNode: 2 },
      onLaunch: ({ pid }) => { torchrun = pid; },
      onProgress: (s) => {
        if (killedAt || s.step < 3) return;
        // torchrun's children (of any of its threads) are the ranks; rank 1's environment says RANK=1.
        const children = readdirSync(`/proc/${torchrun}/task`).flatMap((t) => readFileSync(`/proc/${torchrun}/task/${t}/children`, 'utf8').trim().split(/\s+/)).filter(Boolean).map(Number);
        const rank1 = children.find((pid) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes('RANK=1'));
        if (!rank1) throw new Error(`no rank 1 among torchrun's children ${children}`);
        killedAt = Date.now();
        killedStep = s.step;
        process.kill(rank1, 'SIGKILL');
      },
    });
    const failure = await run.then(() => null, (e: Error) => e);
    // torchrun's summary names the killed rank, unless rank 0 lost its peer and ended the job before torchrun saw
    // rank 1's exit: then rank 1 is named as the rank that stopped without a record (jobFailure, checked above).
    expect(failure?.message, String(failure?.stack)).toMatch(/^rank 1 of 2 (\(pid \d+\) was killed by SIGKILL; torchrun stopped the other ranks|stopped without reporting an error \(killed or crashed.*)$/);
    expect(killedAt).toBeGreaterThan(0);
    const endedAfter = (Date.now() - killedAt) / 1000;
    console.log(`job ended ${endedAfter.toFixed(1)} s after kill -9 of rank 1 (at step ${killedStep})`);
    expect(endedAfter).toBeLessThan(60);

    const saved = JSON.parse(readFileSync(join(runDir, 'checkpoints', 'last.json'), 'utf8'));
    expect(saved.step).toBeGreaterThanOrEqual(2);
    const resumed = await trainRunDistributed({ ...base(), runDir, resume: runDir, launch: { nprocPerNode: 1 }, trainerOptions: { timeBudgetMinutes: 0.02 } });
    expect(resumed.state).toBe('stopped');
    expect(resumed.reason).toBe('time-budget');
    expect(resumed.step).toBeGreaterThan(saved.step);
    const resume = logEvents(runDir).filter((e) => e.event === 'resume');
    expect(resume).toEqual([expect.objectContaining({ step: saved.step, worldSize: 1, globalBatch: 1 })]);
  }, 240_000);

  it('ends the job when a rank raises, with that rank\'s message', async () => {
    const saved = process.env.PYTHONPATH;
    process.env.PYTHONPATH = [join(WORKSPACE, 'bridge', 'python', 'tests'), saved].filter(Boolean).join(delimiter);
    try {
      const long = { ...config, train: { ...config.train, iterations: 50 } };
      const run = trainRunDistributed({
        ...base(), config: long, runDir: join(tmp, 'runs', 'raises'), launch: { nprocPerNode: 2 },
        trainerOptions: { trainer: 'dist_toy_worker:RaisingTrainer', raiseAtStep: 2, raiseOnRank: 1 },
      });
      await expect(run).rejects.toThrow(PythonBridgeError);
      await expect(run).rejects.toMatchObject({ kind: 'bridge', message: 'rank 1 of 2: ValueError: toy failure on purpose at step 2' });
    } finally {
      if (saved === undefined) delete process.env.PYTHONPATH;
      else process.env.PYTHONPATH = saved;
    }
  }, 240_000);
});
