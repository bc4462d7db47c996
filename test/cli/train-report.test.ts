/**
 * `llmed train` on a report-generation experiment, end to end as a user runs it: a tiny workspace whose
 * LLM is a tiny LLaMA-3-style checkpoint in the real on-disk format (config.json, model.safetensors,
 * tokenizer.json), a tiny ViT3D → spatial-pooling → causal LM model, and a prepared folder written by
 * @llmed/imaging's writePreparedVolume plus samples.json. Training goes through the bridge with the report
 * trainer; the run prints a generated report beside its reference. Without the checkpoint and the data it
 * stops before Python, saying what to put where.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeVolume, writePreparedVolume } from '@llmed/imaging';
import { llmed, repoRoot, tempDir } from '../helpers/workspace.ts';

const tmp = tempDir('llmed-report-');
afterAll(() => tmp.cleanup());
const root = join(tmp.dir, 'ws');
const python = join(repoRoot, '.venv', 'bin', 'python');
const hasPython = existsSync(python);

function config(iterations: { align: number; lora: number }) {
  return {
    task: 'report', name: 'tiny-report', method: 'ViT3D-LLaMA3 (test)', description: 'a tiny report generator for the end-to-end test',
    data: {
      source: 'prepared', root: 'data/none', title: 'six random volumes (test data)', howToGet: 'made by test/cli/train-report.test.ts',
      prepared: 'prepared/tiny-report', kinds: ['report'], preprocess: { pipeline: 'none', shape: [8, 8, 4] },
    },
    model: {
      input: { shape: [8, 8, 4], channels: 1 },
      encoder: { use: 'vit3d', with: { patch: [4, 4, 2], width: 16, depth: 1, heads: 2, mlpWidth: 32, trainable: false } },
      projector: { use: 'spatial-pooling', with: { pool: 2, outWidth: 32 } },
      llm: { use: 'llama3', with: { checkpoint: 'checkpoints/tiny-llama3', hiddenSize: 32, endOfText: '<|end_of_text|>' } },
    },
    loss: [{ use: 'token-cross-entropy', weight: 1 }],
    train: {
      stages: [{ name: 'align', train: ['projector'], steps: iterations.align, lr: 0.001 }, { name: 'lora', train: ['projector', 'lora'], steps: iterations.lora, lr: 0.001 }],
      batchSize: 2, maxLength: 48, precision: 'fp32', checkpointEvery: 100, validateEvery: 100,
    },
    generate: { strategy: 'greedy', maxNewTokens: 8 },
  };
}

beforeAll(async () => {
  mkdirSync(join(root, 'configs', 'tiny-report'), { recursive: true });
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'llmed-report-workspace', private: true }));
  writeFileSync(join(root, 'workspace.json'), JSON.stringify({ experiments: { 'tiny-report': 'configs/tiny-report/config.json' }, plugins: [join(repoRoot, 'plugins') + '/*'] }));
  if (existsSync(join(repoRoot, '.venv'))) symlinkSync(join(repoRoot, '.venv'), join(root, '.venv'));
  writeFileSync(join(root, 'configs', 'tiny-report', 'config.json'), JSON.stringify(config({ align: 1, lora: 2 }), null, 2));
}, 120_000);

describe('llmed train (report generation)', () => {
  it('stops before Python and lists the checkpoint folder and the prepared data that are missing', () => {
    const r = llmed(['train', 'tiny-report'], { cwd: root });
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/cannot train 'tiny-report': 2 things are missing/);
    expect(r.stderr).toMatch(/model\.llm \(llama3\): LLaMA 3 causal LM checkpoint folder .*checkpoints\/tiny-llama3 lacks config\.json/);
    expect(r.stderr).toMatch(/prepared\/tiny-report\/samples\.json is missing/);
  });

  it.skipIf(!hasPython)('trains both stages through the bridge and prints a generated report beside its reference', async () => {
    const made = spawnSync(python, [join(repoRoot, 'bridge/python/tests/report_fixtures.py'), 'llama3', join(root, 'checkpoints', 'tiny-llama3'), '32'],
      { cwd: join(repoRoot, 'bridge/python'), encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(repoRoot, 'bridge/python') } });
    expect(made.status, made.stderr).toBe(0);
    const prepared = join(root, 'prepared', 'tiny-report');
    const answers = ['the liver is normal .', 'a small cyst in the left kidney .', 'no effusion .'];
    const samples = [];
    for (let n = 0; n < 6; n++) {
      const data = new Float32Array(8 * 8 * 4).map((_, i) => 0.5 + 0.5 * Math.sin(1.7 * i + n));
      await writePreparedVolume(join(prepared, 'volumes'), `case${n}`, makeVolume(data, [8, 8, 4]));
      samples.push({ id: `case${n}`, image: `volumes/case${n}.json`, region: 'abdomen', kind: 'report', prompt: 'describe the findings in abdomen of this image', answer: answers[n % 3], split: n < 5 ? 'train' : 'val' });
    }
    writeFileSync(join(prepared, 'samples.json'), JSON.stringify(samples));

    const check = llmed(['config', 'check', 'tiny-report'], { cwd: root });
    expect(check.status, check.stderr).toBe(0);
    expect(check.stdout).toContain('checkpoint checkpoints/tiny-llama3 found');
    expect(check.stdout).toMatch(/Python side of model\.llm builds: .*end-of-text <\|end_of_text\|>/);
    // an end-of-text token the tokenizer does not have fails the check, naming the config
    const bad = config({ align: 1, lora: 2 });
    bad.model.llm.with.endOfText = '<|no_such_token|>';
    writeFileSync(join(root, 'configs', 'tiny-report', 'bad.json'), JSON.stringify(bad));
    const failed = llmed(['config', 'check', join(root, 'configs', 'tiny-report', 'bad.json')], { cwd: root });
    expect(failed.status).toBe(1);
    expect(failed.stderr).toMatch(/^error\[plugin\] configs\/tiny-report\/bad\.json: model\.llm \(llama3\): the causal LM cannot be built: endOfText '<\|no_such_token\|>' is not a token/);

    const r = llmed(['train', 'tiny-report', '--device', 'cpu'], { cwd: root, timeoutMs: 240_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/training done at step 3\/3/);
    expect(r.stdout).toMatch(/case5 \(abdomen\)\n {2}reference: no effusion \.\n {2}generated: /);
    const runs = readdirSync(join(root, 'runs', 'tiny-report'));
    const run = join(root, 'runs', 'tiny-report', runs[0]);
    const events = readFileSync(join(run, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === 'phase').map((e) => e.stage)).toEqual(['align', 'lora']);
    expect(events.filter((e) => e.event === 'step')).toHaveLength(3);
    expect(existsSync(join(run, 'checkpoints', 'last.safetensors'))).toBe(true);
    expect(JSON.parse(readFileSync(join(run, 'spec.json'), 'utf8')).task).toBe('report');

    // a time budget stops after the first step with checkpoints/last; --resume finishes the run
    const budget = config({ align: 1, lora: 2 });
    (budget.train as Record<string, unknown>).timeBudgetMinutes = 0.000001;
    writeFileSync(join(root, 'configs', 'tiny-report', 'config.json'), JSON.stringify(budget));
    const part = join(root, 'runs', 'budget');
    const first = llmed(['train', 'tiny-report', '--device', 'cpu', '--run-dir', part], { cwd: root, timeoutMs: 240_000 });
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/training stopped at step 1\/3 .*time budget/);
    const again = llmed(['train', 'tiny-report', '--device', 'cpu', '--resume', part], { cwd: root, timeoutMs: 240_000 });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/training stopped at step 2\/3/);  // the run's own config.json keeps its budget
    const last = llmed(['train', 'tiny-report', '--device', 'cpu', '--resume', part], { cwd: root, timeoutMs: 240_000 });
    expect(last.status, last.stderr).toBe(0);
    expect(last.stdout).toMatch(/training done at step 3\/3/);
    const steps = readFileSync(join(part, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'step');
    expect(steps.map((e) => e.step)).toEqual([1, 2, 3]);
  }, 400_000);
});
