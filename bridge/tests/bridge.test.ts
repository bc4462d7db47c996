/**
 * TypeScript -> Python -> TypeScript, end to end: a tiny prepared dataset written here in the cache
 * format, a tiny LLaMA-Reg-shaped model composed by @llmed/core from the real plugins (with a tiny
 * LLaMA checkpoint built by transformers), trained through pythonia; a clean stop and resume; a Python
 * process killed mid-run; structured errors surfacing as LlmedErrors.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLlmedError, LlmedError, type ExperimentConfig, type ModelSpec } from '@llmed/core';
import { describePythoniaError, PythonBridgeError, PythonSession, resolvePythonBin, specPlugins, trainRun, type TrainStatus } from '../src/index.ts';
import { logEvents, tinyExperiment, WORKSPACE } from './tiny-experiment.ts';

let tmp: string;
let prepared: string;
let config: ExperimentConfig;
let spec: ModelSpec;

function withTrain(train: Partial<ExperimentConfig['train']>): ExperimentConfig {
  return { ...config, train: { ...config.train, ...train } };
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'llmed-bridge-'));
  ({ prepared, config, spec } = await tinyExperiment(tmp));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('PythonSession', () => {
  it('reports the environment, answers calls quickly and describes a composed model', async () => {
    const t0 = performance.now();
    const session = await PythonSession.open({ workspaceRoot: WORKSPACE });
    console.log(`Python session opened (spawn + import llmed.api) in ${(performance.now() - t0).toFixed(0)} ms`);
    try {
      const env = await session.checkEnvironment();
      expect(env.versions.torch).toMatch(/^2\.13\.0/);
      expect(env.pid).toBe(session.pid);
      expect(['cpu', 'cuda']).toContain(env.device);
      const n = 50;
      const t1 = performance.now();
      for (let i = 0; i < n; i++) await session.callRaw('status');
      const perCallMs = (performance.now() - t1) / n;
      console.log(`bridge round trip (status, JSON result): ${perCallMs.toFixed(2)} ms per call`);
      expect(perCallMs).toBeLessThan(50);
      const none = await session.callRaw('status');
      expect(none.ok).toBe(false);
      await expect(session.call('no_such_function')).rejects.toMatchObject({ kind: 'bridge', message: expect.stringMatching(/unknown bridge function/) });

      const specPath = join(tmp, 'describe-spec.json');
      writeFileSync(specPath, JSON.stringify(spec));
      const d = await session.describeModel(specPath, WORKSPACE, specPlugins(spec));
      expect(d.parameters.total).toBeGreaterThan(d.parameters.trainable);
      expect(d.parameters.frozen).toBeGreaterThan(0); // the tiny LLaMA layer
      expect(Object.keys(d.parts)).toContain('encoder');
    } finally {
      await session.close();
    }
  });

  it('names the file at fault of an LLM checkpoint error (CheckpointError.where of Python reaches the LlmedError)', async () => {
    const broken = join(tmp, 'broken-llama');
    mkdirSync(broken, { recursive: true });
    writeFileSync(join(broken, 'config.json'), '{not json');
    const brokenSpec = JSON.parse(JSON.stringify(spec)) as ModelSpec;
    for (const node of brokenSpec.block) if (node.kind === 'LLMBackbone') node.options.checkpoint = broken;
    const specPath = join(tmp, 'broken-llm-spec.json');
    writeFileSync(specPath, JSON.stringify(brokenSpec));
    const session = await PythonSession.open({ workspaceRoot: WORKSPACE });
    try {
      const error = await session.describeModel(specPath, WORKSPACE, specPlugins(brokenSpec)).then(() => null, (e) => e);
      expect(error).toBeInstanceOf(PythonBridgeError);
      expect(error.kind).toBe('checkpoint');
      expect(error.where).toBe(join(broken, 'config.json'));
      expect(error.format()).toMatch(/^error\[checkpoint\] .*broken-llama\/config\.json/);
    } finally {
      await session.close();
    }
  });

  it('turns a pythonia exception (empty message) into its Python error line', () => {
    const e = new Error('');
    e.stack = "*** PY ***  Python Error  Call to 'python' failed:\n> import_module(x)\n... across the bridge ...\n*** JS *** ModuleNotFoundError: No module named 'torch'";
    expect(describePythoniaError(e)).toBe("ModuleNotFoundError: No module named 'torch'");
    expect(describePythoniaError(new Error('plain message\nmore'))).toBe('plain message');
  });

  it('says to run setup when there is no Python environment', () => {
    const saved = process.env.PYTHON_BIN;
    delete process.env.PYTHON_BIN;
    try {
      expect(() => resolvePythonBin(tmp)).toThrowError(/no Python environment/);
      try {
        resolvePythonBin(tmp);
      } catch (e) {
        expect(isLlmedError(e) && e.kind === 'bridge' && /npm run setup/.test(e.hint ?? '')).toBe(true);
      }
    } finally {
      if (saved !== undefined) process.env.PYTHON_BIN = saved;
    }
  });
});

describe('trainRun', () => {
  it('trains a composed model end to end and reports progress', async () => {
    const runDir = join(tmp, 'runs', 'e2e');
    const seen: TrainStatus[] = [];
    const result = await trainRun({
      workspaceRoot: WORKSPACE, experiment: 'bridge-test', configFile: join(tmp, 'config.json'), config, spec,
      preparedDir: prepared, runDir, device: 'cpu', pollMs: 100, onProgress: (s) => seen.push(s),
    });
    expect(result.state).toBe('done');
    expect(result.status).toBe('done');
    expect(result.step).toBe(2);
    expect(result.best?.metric).toBe('dice');
    expect(result.val_dice).not.toBeNull();
    expect(seen.at(-1)?.state).toBe('done');
    expect(seen.some((s) => s.state === 'running')).toBe(true);
    for (const f of ['config.json', 'spec.json', 'log.jsonl', 'checkpoints/last.safetensors', 'checkpoints/last.json', 'checkpoints/best.safetensors']) {
      expect(existsSync(join(runDir, f)), f).toBe(true);
    }
    const events = logEvents(runDir);
    expect(events.filter((e) => e.event === 'step')).toHaveLength(2);
    // two validations plus the step-0 baseline of the unregistered pairs
    const vals = events.filter((e) => e.event === 'val');
    expect(vals).toHaveLength(3);
    expect(vals[0]).toMatchObject({ step: 0, identity: true });
    expect(events.at(-1)?.event).toBe('done');
    const last = JSON.parse(readFileSync(join(runDir, 'checkpoints', 'last.json'), 'utf8'));
    expect(last.step).toBe(2);
    // the run folder names plugins by id; no python paths (code is taken from the registry when resumed or exported)
    const stored = JSON.parse(readFileSync(join(runDir, 'spec.json'), 'utf8')) as ModelSpec;
    expect(stored.encoder.id).toBe(spec.encoder.id);
    expect(JSON.stringify(stored)).not.toMatch(/"python"/);
    expect(last.baseWeights.count).toBeGreaterThan(0); // the frozen LLaMA layer is fingerprinted, not re-saved
  });

  it('exports the trained run as ONNX through the bridge, parity-checked, and refuses a non-run', async () => {
    const runDir = join(tmp, 'runs', 'e2e');
    const session = await PythonSession.open({ workspaceRoot: WORKSPACE });
    try {
      const r = await session.exportModel(runDir, { workspaceRoot: WORKSPACE, threads: 1, plugins: specPlugins(spec) });
      expect(r.exportDir).toBe(join(runDir, 'export'));
      expect(r.manifest.parity.passed).toBe(true);
      expect(r.manifest.parity.maxAbsFieldDiffVoxels).toBeLessThan(1e-3);
      expect(r.manifest.model.opset).toBeGreaterThanOrEqual(20);
      expect(existsSync(join(runDir, 'export', 'model.onnx'))).toBe(true);
      const err = await session.exportModel(join(tmp, 'prepared'), { plugins: specPlugins(spec) }).then(() => null, (e) => e);
      expect(err).toBeInstanceOf(PythonBridgeError);
      expect(err.kind).toBe('checkpoint');
      expect(err.message).toMatch(/config\.json of the run is missing/);
    } finally {
      await session.close();
    }
  }, 180_000);

  it('stops cleanly on SIGINT, saves last, and resumes to the end', async () => {
    const runDir = join(tmp, 'runs', 'sigint');
    const cfg = withTrain({ iterations: 400, validateEvery: 1000, checkpointEvery: 1000 });
    let signalled = false;
    const stopped = await trainRun({
      workspaceRoot: WORKSPACE, experiment: 'bridge-test', configFile: 'x', config: cfg, spec, preparedDir: prepared, runDir, device: 'cpu', pollMs: 100,
      onProgress: (s) => {
        if (!signalled && s.step >= 1) {
          signalled = true;
          process.emit('SIGINT', 'SIGINT'); // what Ctrl-C delivers to Node
        }
      },
    });
    expect(stopped.state).toBe('stopped');
    expect(stopped.reason).toBe('requested');
    expect(stopped.interrupted).toBe(true);
    expect(stopped.step).toBeGreaterThanOrEqual(1);
    expect(stopped.step).toBeLessThan(400);
    const last = JSON.parse(readFileSync(join(runDir, 'checkpoints', 'last.json'), 'utf8'));
    expect(last.step).toBe(stopped.step);
    expect(logEvents(runDir).at(-1)?.event).toBe('stopped');

    // resume; a resumed run uses its own config.json, so shorten that run's length on disk first
    const cfgFile = join(runDir, 'config.json');
    const saved = JSON.parse(readFileSync(cfgFile, 'utf8'));
    saved.train.iterations = stopped.step + 1;
    writeFileSync(cfgFile, JSON.stringify(saved));
    const resumed = await trainRun({
      workspaceRoot: WORKSPACE, experiment: 'bridge-test', configFile: 'x', config: cfg, spec, preparedDir: prepared, resume: runDir, device: 'cpu', pollMs: 100,
    });
    expect(resumed.state).toBe('done');
    expect(resumed.step).toBe(stopped.step + 1);
    expect(logEvents(runDir).filter((e) => e.event === 'resume')).toHaveLength(1);
  });

  it('notices at once when the Python process is killed mid-run', async () => {
    const runDir = join(tmp, 'runs', 'killed');
    const cfg = withTrain({ iterations: 100_000, validateEvery: 100_000, checkpointEvery: 100_000 });
    let killedAt = 0;
    let pid = 0;
    const run = trainRun({
      workspaceRoot: WORKSPACE, experiment: 'bridge-test', configFile: 'x', config: cfg, spec, preparedDir: prepared, runDir, device: 'cpu', pollMs: 500,
      onStart: (info) => { pid = info.pid; },
      onProgress: (s) => {
        if (!killedAt && s.step >= 1) {
          killedAt = performance.now();
          process.kill(s.pid, 'SIGKILL');
        }
      },
    });
    const error = await run.then(() => null, (e) => e);
    const detectedMs = performance.now() - killedAt;
    expect(error).toBeInstanceOf(LlmedError);
    expect(error.kind).toBe('bridge');
    expect(error.message).toMatch(/Python process \(pid \d+\) was killed by SIGKILL/);
    expect(error.hint).toMatch(/--resume/);
    expect(pid).toBeGreaterThan(0);
    expect(detectedMs).toBeLessThan(2000);
    console.log(`killed Python detected after ${detectedMs.toFixed(0)} ms`);
  });

  it('surfaces Python errors as typed LlmedErrors with the traceback kept', async () => {
    // a run folder with its spec and config but no checkpoints: resume fails in Python, kind checkpoint
    const runDir = join(tmp, 'runs', 'nothing-to-resume');
    mkdirSync(runDir, { recursive: true });
    writeFileSync(join(runDir, 'spec.json'), JSON.stringify(spec));
    writeFileSync(join(runDir, 'config.json'), JSON.stringify(config));
    const error = await trainRun({
      workspaceRoot: WORKSPACE, experiment: 'bridge-test', configFile: 'x', config, spec, preparedDir: prepared, resume: runDir, device: 'cpu', pollMs: 100,
    }).then(() => null, (e) => e);
    expect(error).toBeInstanceOf(PythonBridgeError);
    expect(error.kind).toBe('checkpoint');
    expect(error.message).toMatch(/no checkpoints folder/);
    expect(error.where).toContain('nothing-to-resume');
    expect(error.pythonTraceback).toMatch(/Traceback/);
    expect(error.format()).toMatch(/^error\[checkpoint\]/);

    // a prepared folder that does not exist: kind data, with the hint to prepare it
    const missing = await trainRun({
      workspaceRoot: WORKSPACE, experiment: 'bridge-test', configFile: 'x', config, spec, preparedDir: join(tmp, 'not-prepared'), runDir: join(tmp, 'runs', 'no-data'), device: 'cpu', pollMs: 100,
    }).then(() => null, (e) => e);
    expect(missing).toBeInstanceOf(PythonBridgeError);
    expect(missing.kind).toBe('data');
    expect(missing.hint).toMatch(/llmed data prepare/);
  });
});
