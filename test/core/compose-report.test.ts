/**
 * Report-generation composition (compose-report.ts): the real report configs compose, and the ways of
 * sizing the projector wrong fail in TypeScript, naming the config file, the config path and both numbers
 * — also through `llmed config check`, as a user runs it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkSpecPlugins, composeReportModel, isLlmedError, loadAnyExperimentConfig, loadRegistry, loadWorkspace, runFolderSpec, specNodes,
  validateReportExperiment, type ReportExperimentConfig,
} from '@llmed/core';
import { llmed, repoRoot, tempDir } from '../helpers/workspace.ts';

const ws = loadWorkspace(repoRoot);
const registry = await loadRegistry(ws);
const tmp = tempDir();
afterAll(() => tmp.cleanup());

const base = (name: string) => JSON.parse(readFileSync(join(repoRoot, 'configs', name, 'config.json'), 'utf8')) as ReportExperimentConfig;

function compose(cfg: unknown, name = 'report.json') {
  const file = join(tmp.dir, name);
  writeFileSync(file, JSON.stringify(cfg));
  return composeReportModel(validateReportExperiment(cfg, file), file, registry, { workspaceRoot: repoRoot });
}

function errorOf(fn: () => unknown): { kind: string; text: string } {
  try { fn(); } catch (e) {
    if (!isLlmedError(e)) throw e;
    return { kind: e.kind, text: e.format() };
  }
  throw new Error('expected an error');
}

describe('report experiments compose', () => {
  it('amos-mrg: 2048 ViT3D tokens on a 16×16×8 grid pool to 256 tokens of the LLM width 4096', () => {
    const spec = compose(base('amos-mrg'));
    expect(spec.task).toBe('report');
    expect(spec.encoder.output).toEqual({ type: 'tokens', length: 2048, width: 768, grid: [16, 16, 8] });
    expect(spec.projector.output).toEqual({ type: 'tokens', length: 256, width: 4096, grid: [8, 8, 4] });
    expect(spec.llm.options.hiddenSize).toBe(4096);
    // LoRA defaults of the causal-LM facet (spec §3.3), filled in even where the config names only some
    expect(spec.llm.options.lora).toEqual({ rank: 16, alpha: 32, dropout: 0.05, targets: 'all-linear' });
    expect(spec.llm.options.family).toMatchObject({ id: 'llama3', modelTypes: ['llama'] });
    expect(spec.losses.map((l) => l.id)).toEqual(['token-cross-entropy']);
  });

  it('report-proxy verifies SmolLM2 against its config.json (hidden 576, vocab 49152)', () => {
    const spec = compose(base('report-proxy'));
    expect(spec.llm.options.checkpointFound).toBe(true);
    expect(spec.llm.options.vocabSize).toBe(49152);
    expect(spec.projector.output.width).toBe(576);
    expect(spec.encoder.output).toEqual({ type: 'tokens', length: 12, width: 2048, grid: [2, 2, 3] });
  });

  it('specNodes, runFolderSpec and checkSpecPlugins work on a report spec', () => {
    const spec = compose(base('amos-mrg'));
    expect(specNodes(spec).map((n) => n.path)).toEqual(['model.encoder', 'model.projector', 'model.llm', 'loss[0]']);
    const stored = runFolderSpec(spec);
    expect(specNodes(stored).every((n) => n.python === undefined)).toBe(true);
    expect(spec.encoder.python).toBeDefined();
    expect(() => checkSpecPlugins(stored, registry, 'spec.json')).not.toThrow();
    stored.projector.id = 'no-such-projector';
    expect(errorOf(() => checkSpecPlugins(stored, registry, 'spec.json')).text).toMatch(/spec\.json model\.projector/);
  });

  it('loadAnyExperimentConfig tells the tasks apart', () => {
    expect((loadAnyExperimentConfig(join(repoRoot, 'configs/amos-mrg/config.json')) as { task?: string }).task).toBe('report');
    expect((loadAnyExperimentConfig(join(repoRoot, 'configs/demo/config.json')) as { task?: string }).task).toBeUndefined();
  });
});

describe('report composition errors name the config path and both numbers', () => {
  it('a projector width that is not the LLM hidden size', () => {
    const cfg = base('amos-mrg');
    cfg.model.projector.with = { ...cfg.model.projector.with, outWidth: 3072 };
    const e = errorOf(() => compose(cfg, 'width.json'));
    expect(e.kind).toBe('shape');
    expect(e.text).toMatch(/width\.json model\.projector\.with\.outWidth: the projector gives tokens 3072 wide, but the LLM \(model\.llm, llama3\) has hidden size 4096/);
  });

  it('a projector width that is not the hidden size read from the checkpoint', () => {
    const cfg = base('report-proxy');
    cfg.model.projector.with = { outWidth: 512 };
    expect(errorOf(() => compose(cfg)).text).toMatch(/model\.projector\.with\.outWidth: the projector gives tokens 512 wide, but the LLM \(model\.llm, llama2\) has hidden size 576 \(from checkpoint \.cache\/checkpoints\/SmolLM2-135M-Instruct\)/);
  });

  it('an LLM hiddenSize that contradicts the checkpoint', () => {
    const cfg = base('report-proxy');
    cfg.model.llm.with = { ...cfg.model.llm.with, hiddenSize: 512 };
    cfg.model.projector.with = { outWidth: 512 };
    expect(errorOf(() => compose(cfg)).text).toMatch(/model\.llm\.with\.hiddenSize: the config says hiddenSize 512, but checkpoint .*config\.json has hidden_size 576/);
  });

  it('a token grid the pool does not divide', () => {
    const cfg = base('amos-mrg');
    cfg.model.projector.with = { ...cfg.model.projector.with, pool: 3 };
    const e = errorOf(() => compose(cfg));
    expect(e.text).toMatch(/model\.projector\.with\.pool: token grid 16×16×8 is not divisible by pool 3 along i \(16 by 3\); its tokens come from model\.encoder \(vit3d/);
  });

  it('an input the ViT3D patch does not divide', () => {
    const cfg = base('amos-mrg');
    cfg.model.input.shape = [256, 256, 30];
    expect(errorOf(() => compose(cfg)).text).toMatch(/model\.encoder\.with\.patch: input 256×256×30 is not divisible by patch 16×16×4 along k \(30 by 4\)/);
  });

  it('an LLM plugin that is not an LLMBackbone, and unknown options of the causal LM', () => {
    const cfg = base('amos-mrg');
    cfg.model.llm = { use: 'vit3d' };
    expect(errorOf(() => compose(cfg)).text).toMatch(/model\.llm\.use/);
    const cfg2 = base('amos-mrg');
    cfg2.model.llm.with = { ...cfg2.model.llm.with, layers: [3] };
    expect(errorOf(() => compose(cfg2)).text).toMatch(/model\.llm\.with\.layers: is not a known setting/);
  });

  it('a report config with a registration section is a config error naming it', () => {
    const cfg = { ...base('amos-mrg'), model: { ...base('amos-mrg').model, decoder: { use: 'cascade' } } };
    expect(errorOf(() => compose(cfg)).text).toMatch(/model\.decoder: is not a known setting/);
  });
});

describe('llmed config check on report experiments', () => {
  it('passes on amos-mrg and says what is missing', () => {
    const r = llmed(['config', 'check', 'amos-mrg']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('256 tokens × 4096');
    expect(r.stdout).toContain('checkpoints/Asclepius-Llama3-8B not found');
  });

  it('fails on a copy whose projector width is not the LLM hidden size, naming both numbers', () => {
    const cfg = base('amos-mrg');
    cfg.model.projector.with = { ...cfg.model.projector.with, outWidth: 2048 };
    const file = join(tmp.dir, 'amos-2048.json');
    writeFileSync(file, JSON.stringify(cfg, null, 2));
    const r = llmed(['config', 'check', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^error\[shape\] .*amos-2048\.json model\.projector\.with\.outWidth: the projector gives tokens 2048 wide, but the LLM \(model\.llm, llama3\) has hidden size 4096/);
  });
});
