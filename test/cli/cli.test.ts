/**
 * The `llmed` command as a user runs it (a child process): exit codes, one-line errors naming the file
 * or config path, stack traces only with --debug, and the Nx projects inferred from workspace.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { hasMricron, hasSharedData, llmed, mricron, repoRoot, sharedData, tempDir } from '../helpers/workspace.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** An error is one `error[kind] ...` line plus an optional hint, and no stack trace. */
function expectCleanError(stderr: string, pattern: RegExp) {
  expect(stderr).toMatch(/^error\[[a-z-]+\] /);
  expect(stderr).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)/);
}

describe('llmed config check', () => {
  it('passes on abdomen-mrct and lists the composed chain', () => {
    const r = llmed(['config', 'check', 'abdomen-mrct']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('180 tokens × 4096');
    expect(r.stdout).toContain('checkpoint checkpoints/Meta-Llama-3-8B not found');
  });

  it('fails on a copy with Adapter0 set to 3072, naming the config path and both numbers', () => {
    const cfg = JSON.parse(readFileSync(join(repoRoot, 'configs/abdomen-mrct/config.json'), 'utf8'));
    cfg.model.block[0].with.out = 3072;
    const file = join(tmp.dir, 'abdomen-3072.json');
    writeFileSync(file, JSON.stringify(cfg, null, 2));
    const r = llmed(['config', 'check', file]);
    expect(r.status).toBe(1);
    expectCleanError(r.stderr, /abdomen-3072\.json model\.block\[1\]\.with\.hiddenSize: token width 3072 does not match the LLaMA 3 hidden size 4096/);
  });

  it('passes with "use": "qwen2" instead of "llama3"', () => {
    const text = readFileSync(join(repoRoot, 'configs/abdomen-mrct/config.json'), 'utf8').replaceAll('"use": "llama3"', '"use": "qwen2"');
    const file = join(tmp.dir, 'abdomen-qwen2.json');
    writeFileSync(file, text);
    const r = llmed(['config', 'check', file]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/model\.block\[1\]\s+qwen2/);
  });

  it('reports invalid JSON and unknown experiments in one line', () => {
    const file = join(tmp.dir, 'broken.json');
    writeFileSync(file, '{ "name": ');
    expectCleanError(llmed(['config', 'check', file]).stderr, /broken\.json: not valid JSON/);
    const r = llmed(['config', 'check', 'no-such-experiment']);
    expect(r.status).toBe(1);
    expectCleanError(r.stderr, /no experiment or config file by this name; experiments: demo, knee, brain-oasis, abdomen-mrct, srreg/);
  });

  it('shows the stack trace only with --debug', () => {
    const r = llmed(['config', 'check', 'no-such-experiment', '--debug']);
    expect(r.stderr).toMatch(/\n\s+at /);
  });
});

describe('llmed plugins list', () => {
  it('prints the registry as a table and as JSON', () => {
    const r = llmed(['plugins', 'list']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/LLMBackbone\s+qwen2/);
    const j = llmed(['plugins', 'list', '--json']);
    const list = JSON.parse(j.stdout) as { id: string; kind: string }[];
    expect(list.find((p) => p.id === 'dual-pyramid')?.kind).toBe('Encoder');
  });
});

describe('llmed data inspect', () => {
  it.skipIf(!hasMricron)('reads the Colin27 template and the AAL atlas', () => {
    const r = llmed(['data', 'inspect', join(mricron, 'ch2.nii.gz')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/181 x 217 x 181/);
    const j = JSON.parse(llmed(['data', 'inspect', join(mricron, 'aal.nii.gz'), '--json']).stdout);
    expect(j.labels.length).toBeGreaterThanOrEqual(117);
  });

  it.skipIf(!hasSharedData)('reads FreeSurfer bert (256³, LIA)', () => {
    const r = llmed(['data', 'inspect', join(sharedData, 'brain/bert_t1.nii.gz')]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/256 x 256 x 256/);
    expect(r.stdout).toMatch(/LIA/);
  });

  it.skipIf(!hasMricron)('rejects a truncated .nii.gz with one line naming the file', () => {
    const bad = join(tmp.dir, 'truncated.nii.gz');
    const bytes = readFileSync(join(mricron, 'ch2.nii.gz'));
    writeFileSync(bad, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const r = llmed(['data', 'inspect', bad]);
    expect(r.status).toBe(1);
    expectCleanError(r.stderr, /truncated\.nii\.gz/);
  });

  it.skipIf(!hasMricron)('rejects a crafted header whose dims need more memory than the file holds', () => {
    const raw = gunzipSync(readFileSync(join(mricron, 'ch2.nii.gz')));
    raw.writeInt16LE(30000, 42); raw.writeInt16LE(30000, 44); raw.writeInt16LE(30000, 46);
    const bad = join(tmp.dir, 'huge.nii.gz');
    writeFileSync(bad, gzipSync(raw.subarray(0, 400_000)));
    const r = llmed(['data', 'inspect', bad]);
    expect(r.status).toBe(1);
    expectCleanError(r.stderr, /huge\.nii\.gz/);
  });

  it('rejects a missing file', () => {
    const r = llmed(['data', 'inspect', join(tmp.dir, 'nope.nii.gz')]);
    expect(r.status).toBe(1);
    expectCleanError(r.stderr, /nope\.nii\.gz/);
  });
});

describe('llmed commands and usage', () => {
  it('an unknown command or option exits 2 with the list', () => {
    const r = llmed(['fly']);
    expect(r.status).toBe(2);
    expectCleanError(r.stderr, /unknown command 'fly'/);
    const o = llmed(['config', 'check', 'demo', '--fast']);
    expect(o.status).toBe(2);
    expectCleanError(o.stderr, /unknown option --fast for 'config check'/);
  });

  it('torchrun flags that do not fit together exit 2 before anything is prepared or started', () => {
    const cases: [string[], RegExp][] = [
      [['train', 'demo', '--nnodes', '2'], /--nnodes \/ --node-rank \/ --master-addr \/ --master-port go with --nproc-per-node N/],
      [['train', 'demo', '--nproc-per-node', '2', '--nnodes', '2'], /--nnodes 2 needs --master-addr/],
      [['train', 'demo', '--nproc-per-node', '2', '--nnodes', '2', '--node-rank', '2', '--master-addr', 'node0'], /--node-rank 2 is not below --nnodes 2/],
      [['train', 'demo', '--nproc-per-node', '2', '--nnodes', '2', '--master-addr', 'node0'], /--nnodes 2 needs --run-dir/],
      [['train', 'demo', '--nproc-per-node', 'two'], /--nproc-per-node must be a number/],
      [['train', 'demo', '--batch-size', '0'], /--batch-size must be an integer ≥ 1/],
      [['train', 'demo', '--threads', '0'], /--threads must be an integer ≥ 1/],
    ];
    for (const [args, re] of cases) {
      const r = llmed(args);
      expect(r.status, args.join(' ')).toBe(2);
      expectCleanError(r.stderr, re);
      expect(r.stdout + r.stderr).not.toMatch(/prepar/);
    }
  });

  it('export and evaluate of an experiment that was never trained say how to train it', () => {
    for (const cmd of [['evaluate', 'knee'], ['export', 'knee']]) {
      const r = llmed(cmd);
      expect(r.status).toBe(1);
      expectCleanError(r.stderr, /experiment 'knee' has no trained run yet/);
      expect(r.stderr).toMatch(/hint: train it first: llmed train knee/);
    }
    const x = llmed(['export', 'x']);
    expect(x.status).toBe(2);
    expectCleanError(x.stderr, /'x' is neither a run folder nor an experiment/);
  });

  it('register without its inputs says which flags are missing', () => {
    const r = llmed(['register', '--fixed', 'f.nii.gz']);
    expect(r.status).toBe(2);
    expectCleanError(r.stderr, /register needs --moving, --model/);
  });

  it('training a paper-scale experiment without its data and checkpoint says what to put where', () => {
    const r = llmed(['train', 'abdomen-mrct'], { env: { LLMED_DATA: join(tmp.dir, 'no-data') } });
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/cannot train 'abdomen-mrct'/);
    expect(r.stderr).toMatch(/meta-llama\/Meta-Llama-3-8B/);
    expect(r.stderr).toMatch(/AbdomenMRCT_dataset\.json/);
  });

  it('data prepare on an absent dataset names the folder and how to get it', () => {
    const r = llmed(['data', 'prepare', 'brain-oasis'], { env: { LLMED_DATA: join(tmp.dir, 'no-data') } });
    expect(r.status).toBe(1);
    expectCleanError(r.stderr, /dataset folder .*no-data\/OASIS does not exist/);
    expect(r.stderr).toMatch(/hint: Download the Learn2Reg 2021 OASIS task/);
  });
});

describe('portable outputs', () => {
  it.skipIf(!existsSync(join(repoRoot, '.cache', 'checkpoints', 'SmolLM2-135M-Instruct')))('docs/example-model-spec.json is the demo\'s spec as composed now, with no absolute path of the machine', () => {
    const r = llmed(['config', 'check', 'demo', '--json', '--portable']);
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(/"\/|[A-Z]:\\\\/);
    expect(r.stdout).toContain('"<workspace>/plugins/');
    expect(readFileSync(join(repoRoot, 'docs', 'example-model-spec.json'), 'utf8')).toBe(r.stdout);
  });
});

describe('npm and the project config', () => {
  it('npm reads the project .npmrc without an "Unknown project config" warning, and skips install scripts', () => {
    const r = spawnSync('npm', ['config', 'get', 'ignore-scripts'], { cwd: repoRoot, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('true');
    expect(r.stderr).not.toMatch(/Unknown project config/);
  });
});

describe('Nx integration', () => {
  it('infers one project per experiment from workspace.json, with llmed targets', () => {
    const nx = join(repoRoot, 'node_modules', '.bin', 'nx');
    const r = spawnSync(nx, ['show', 'projects'], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' } });
    expect(r.status, r.stderr).toBe(0);
    for (const p of ['knee', 'brain-oasis', 'abdomen-mrct', 'srreg', 'demo']) expect(r.stdout.split('\n')).toContain(p);
    const show = spawnSync(nx, ['show', 'project', 'knee', '--json'], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NX_DAEMON: 'false' } });
    const project = JSON.parse(show.stdout);
    expect(Object.keys(project.targets)).toEqual(expect.arrayContaining(['train', 'evaluate', 'export', 'register', 'check', 'prepare']));
    expect(project.targets.train.options.command).toContain('llmed.mjs train knee');
    // the benchmarks are inferred from bench/ as one project
    const bench = JSON.parse(spawnSync(nx, ['show', 'project', 'bench', '--json'], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NX_DAEMON: 'false' } }).stdout);
    expect(Object.keys(bench.targets)).toEqual(expect.arrayContaining(['accuracy', 'inference']));
    expect(bench.targets.accuracy.options.command).toContain('bench/accuracy/accuracy.ts');
  });

  it('nx run abdomen-mrct:check runs the real check', () => {
    const nx = join(repoRoot, 'node_modules', '.bin', 'nx');
    const r = spawnSync(nx, ['run', 'abdomen-mrct:check'], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NX_DAEMON: 'false' } });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('shapes check out');
  });
});

