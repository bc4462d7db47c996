/**
 * Composition and its shape checks, on the real experiment configs: every experiment composes, and each
 * way of getting a composition wrong fails before anything runs, naming the config file, the config path
 * and both numbers.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { composeModel, isLlmedError, isReportConfig, loadExperimentConfig, loadRegistry, loadWorkspace, validateExperiment, type ExperimentConfig } from '@llmed/core';
import { repoRoot, tempDir } from '../helpers/workspace.ts';

const ws = loadWorkspace(repoRoot);
const registry = await loadRegistry(ws);
const tmp = tempDir();
afterAll(() => tmp.cleanup());

const base = (name: string) => JSON.parse(readFileSync(join(repoRoot, 'configs', name, 'config.json'), 'utf8')) as ExperimentConfig;

function compose(cfg: unknown, file = join(tmp.dir, 'config.json')) {
  writeFileSync(file, JSON.stringify(cfg));
  const c = loadExperimentConfig(file);
  return composeModel(c, file, registry, { workspaceRoot: repoRoot });
}

function errorOf(fn: () => unknown): { kind: string; text: string } {
  try { fn(); } catch (e) {
    if (!isLlmedError(e)) throw e;
    return { kind: e.kind, text: e.format() };
  }
  throw new Error('expected an error');
}

describe('experiment configs', () => {
  // report-generation experiments compose through compose-report.ts (test/core/compose-report.test.ts)
  const registration = Object.keys(ws.experiments).filter((n) => !isReportConfig(JSON.parse(readFileSync(join(repoRoot, ws.experiments[n]), 'utf8'))));
  it.each(registration)('%s composes with all shapes consistent', (name) => {
    const file = join(repoRoot, ws.experiments[name]);
    const spec = composeModel(loadExperimentConfig(file), file, registry, { workspaceRoot: repoRoot });
    expect(spec.encoder.output.levels.at(-1)!.spatial).toEqual(spec.tokens.output.grid);
    expect(spec.decoder.output.fields.at(-1)!.spatial).toEqual(spec.input.spatial);
    // The LLM blocks see exactly their hidden size.
    for (const node of spec.block) if (node.kind === 'LLMBackbone') expect(node.inputs.tokens!.width).toBe(node.options.hiddenSize);
  });

  it('reproduces the papers\' token counts (LLaMA-Reg knee 600, OASIS 560; LLM-Morph abdomen 180, SR-Reg 1716)', () => {
    const L = (n: string) => compose(base(n), join(tmp.dir, `${n}.json`)).tokens.output.length;
    expect([L('knee'), L('brain-oasis'), L('abdomen-mrct'), L('srreg')]).toEqual([600, 560, 180, 1716]);
  });

  it('LLaMA-Reg applies one LLM layer twice (shared weights) around the inner adapter', () => {
    const spec = compose(base('knee'), join(tmp.dir, 'knee2.json'));
    expect(spec.block.map((b) => b.id)).toEqual(['adapter0', 'llama2', 'inner-mlp', 'llama2']);
    expect(spec.block[3].sharesWith).toBe('model.block[1]');
    expect(spec.block[3].options).toEqual(spec.block[1].options);
  });

  it('swapping the LLM family is a one-word change', () => {
    const cfg = base('abdomen-mrct');
    cfg.model.block[1].use = 'qwen2';
    cfg.model.block[3].use = 'qwen2';
    const spec = compose(cfg);
    expect(spec.block[1].id).toBe('qwen2');
    expect(spec.block[1].python!.module).toBe('llmed_qwen2');
  });
});

describe('composition errors name the config path and both numbers', () => {
  it('Adapter0 giving 3072 into a 4096-wide LLaMA-3 layer', () => {
    const cfg = base('abdomen-mrct');
    (cfg.model.block[0].with as Record<string, unknown>).out = 3072;
    const e = errorOf(() => compose(cfg));
    expect(e.kind).toBe('shape');
    expect(e.text).toContain('config.json model.block[1].with.hiddenSize');
    expect(e.text).toContain('3072');
    expect(e.text).toContain('4096');
    expect(e.text).toContain('model.block[0] (adapter0');
  });

  it('a token grid that does not match the 1/16 feature map', () => {
    const cfg = base('abdomen-mrct');
    (cfg.model.tokens.with as Record<string, unknown>).grid = [6, 6, 6];
    const e = errorOf(() => compose(cfg));
    expect(e.text).toMatch(/model\.tokens\.with\.grid: token grid 6×6×6 does not match the 1\/16 feature map 6×5×6/);
  });

  it('an input dimension not divisible by 16', () => {
    const cfg = base('demo');
    cfg.model.input.shape = [64, 72, 64];
    const e = errorOf(() => compose(cfg));
    expect(e.text).toMatch(/model\.input\.shape\[1\]: input dimension 72 is not divisible by 16/);
  });

  it('an unknown plugin id lists the known ones of that kind', () => {
    const cfg = base('demo');
    cfg.model.block[1].use = 'llama4';
    const e = errorOf(() => compose(cfg));
    expect(e.kind).toBe('plugin');
    expect(e.text).toContain("unknown plugin 'llama4'");
    expect(e.text).toMatch(/known: .*llama2.*llama3.*phi3.*qwen2/);
  });

  it('a plugin of the wrong kind', () => {
    const cfg = base('demo');
    cfg.model.decoder.use = 'dual-pyramid';
    expect(errorOf(() => compose(cfg)).text).toMatch(/model\.decoder\.use: .*'dual-pyramid' is a Encoder, but a Decoder is needed/);
  });

  it('a config that fails the schema names the path', () => {
    const cfg = base('demo') as unknown as Record<string, any>;
    cfg.train.lr = 'fast';
    expect(errorOf(() => compose(cfg)).text).toMatch(/train\.lr: must be number/);
    const cfg2 = base('demo') as unknown as Record<string, any>;
    cfg2.model.encoder.with.chanels = [1, 2];
    expect(errorOf(() => compose(cfg2)).text).toMatch(/model\.encoder\.with\.chanels: is not a known setting/);
    const cfg3 = base('demo') as unknown as Record<string, any>;
    delete cfg3.data.howToGet;
    expect(errorOf(() => validateExperiment(cfg3, 'x.json')).text).toMatch(/x\.json data\.howToGet: is required/);
  });

  it('sharing an unknown block item', () => {
    const cfg = base('knee');
    cfg.model.block[3].share = 'nope';
    expect(errorOf(() => compose(cfg)).text).toMatch(/model\.block\[3\]\.share: names 'nope'/);
  });

  it('stage adapters whose base is too small for four stages', () => {
    const cfg = base('demo');
    cfg.model.stageAdapters.with = { base: 8 };
    expect(errorOf(() => compose(cfg)).text).toMatch(/model\.stageAdapters\.with\.base: base 8 is too small/);
  });

  it('cascade iterations that do not add up', () => {
    const cfg = base('knee');
    cfg.train.iterations = 1000;
    expect(errorOf(() => compose(cfg)).text).toMatch(/train\.iterations: is 1000, but train\.cascade\.iterations add up to 290000/);
  });

  it('an LLM checkpoint whose config.json disagrees with the config', () => {
    const ck = join(tmp.dir, 'ckpt');
    mkdirSync(ck, { recursive: true });
    writeFileSync(join(ck, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 2048, num_hidden_layers: 16 }));
    const cfg = base('abdomen-mrct');
    (cfg.model.block[1].with as Record<string, unknown>).checkpoint = ck;
    expect(errorOf(() => compose(cfg)).text).toMatch(/model\.block\[1\]\.with\.hiddenSize: the config says hiddenSize 4096, but checkpoint .*config\.json has hidden_size 2048/);
    (cfg.model.block[0].with as Record<string, unknown>).out = 2048;
    (cfg.model.block[1].with as Record<string, unknown>).hiddenSize = 2048;
    expect(compose(cfg).block[1].options.numLayers).toBe(16); // read from the checkpoint's config.json
    (cfg.model.block[1].with as Record<string, unknown>).layers = [16];
    expect(errorOf(() => compose(cfg)).text).toMatch(/model\.block\[1\]\.with\.layers: layer index 16 is out of range: LLaMA 3 checkpoint .* has 16 layers \(0\.\.15\)/);
    (cfg.model.block[1].with as Record<string, unknown>).checkpoint = ck;
    writeFileSync(join(ck, 'config.json'), JSON.stringify({ model_type: 'qwen2', hidden_size: 2048, num_hidden_layers: 16 }));
    expect(errorOf(() => compose(cfg)).text).toMatch(/model_type 'qwen2', which is not a LLaMA 3 model/);
  });
});
