/**
 * A third-party plugin is an npm package (or a folder) listed in workspace.json; nothing in llmed changes
 * to accept it. The tests build throw-away workspaces with one of each, register a new LLM family and a
 * new loss, and compose a config that uses them; the last one takes a new LLM family (Mistral) from
 * `llmed plugins new` outside the checkout through training and ONNX export.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { composeModel, isLlmedError, llmBackboneDescriptor, loadExperimentConfig, loadRegistry, loadWorkspace, pluginOptions, readLLMFamily, type LLMBackboneOptions } from '@llmed/core';
import { makeTinyWorkspace, tinyConfig } from '../helpers/tiny-workspace.ts';
import { llmed, repoRoot } from '../helpers/workspace.ts';

// Inside the repo so that `@llmed/core` resolves from the plugin files through node_modules.
const ws = join(repoRoot, '.cache', `third-party-ws-${process.pid}`);
afterAll(() => rmSync(ws, { recursive: true, force: true }));

function write(file: string, text: string) {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, text);
}

write(join(ws, 'package.json'), JSON.stringify({ name: 'tp-ws', private: true, type: 'module' }));
// An npm-installed package, found by name.
write(join(ws, 'node_modules/llmed-plugin-gemma/package.json'), JSON.stringify({ name: 'llmed-plugin-gemma', type: 'module', exports: { '.': './index.ts' } }));
write(join(ws, 'node_modules/llmed-plugin-gemma/index.ts'), `
import { llmBackboneDescriptor, pluginModule } from '@llmed/core';
export const descriptor = llmBackboneDescriptor({
  id: 'gemma', title: 'Gemma', modelTypes: ['gemma'], huggingFaceRepo: 'google/gemma-2b',
  defaults: { checkpoint: 'checkpoints/gemma-2b', layers: [9], hiddenSize: 2048, numLayers: 18 },
  loraTargets: ['q_proj', 'k_proj', 'v_proj'],
  python: { root: ${JSON.stringify(ws)}, module: 'llmed_gemma', factory: 'build' },
});
export default pluginModule(descriptor);
`);
// A local folder, found by relative path.
write(join(ws, 'my-plugins/ssim/package.json'), JSON.stringify({ name: 'ssim-loss', type: 'module', main: 'index.ts' }));
write(join(ws, 'my-plugins/ssim/index.ts'), `
import { definePlugin, pluginModule } from '@llmed/core';
export default pluginModule(definePlugin({ id: 'ssim', kind: 'Loss', summary: 'structural similarity loss (third-party)', options: { type: 'object', properties: { window: { type: 'integer', default: 7 } } }, example: { options: {}, inputs: {} } }));
`);

describe('third-party plugins', () => {
  it('load from workspace.json by package name and by folder, next to the first-party ones, and compose', async () => {
    write(join(ws, 'workspace.json'), JSON.stringify({ experiments: {}, plugins: [join(repoRoot, 'plugins') + '/*', 'llmed-plugin-gemma', './my-plugins/ssim'] }));
    const reg = await loadRegistry(loadWorkspace(ws));
    expect(reg.get('gemma').kind).toBe('LLMBackbone');
    expect(reg.sourceOf('gemma')).toBe('llmed-plugin-gemma');
    expect(reg.get('ssim', 'Loss').summary).toContain('third-party');

    const cfgFile = join(repoRoot, 'configs/abdomen-mrct/config.json');
    const cfg = loadExperimentConfig(cfgFile);
    cfg.model.block = [
      { use: 'adapter0', with: { out: 2048 } },
      { use: 'gemma', with: { layers: [9] } },
    ];
    cfg.loss.push({ use: 'ssim', weight: 0.5 });
    const spec = composeModel(cfg, cfgFile, reg, { workspaceRoot: ws });
    expect(spec.block[1].options.hiddenSize).toBe(2048);
    expect(spec.losses.map((l) => l.id)).toEqual(['dice-loss', 'diffusion', 'ssim']);
  });

  it('a package that is not installed, and a duplicate id, are clear errors', async () => {
    write(join(ws, 'workspace.json'), JSON.stringify({ experiments: {}, plugins: ['llmed-plugin-missing'] }));
    await expect(loadRegistry(loadWorkspace(ws))).rejects.toThrow(/package 'llmed-plugin-missing' is not installed/);
    write(join(ws, 'workspace.json'), JSON.stringify({ experiments: {}, plugins: ['./my-plugins/ssim', './my-plugins/ssim'] }));
    try {
      await loadRegistry(loadWorkspace(ws));
      throw new Error('expected a duplicate-id error');
    } catch (e) {
      expect(isLlmedError(e) && e.message).toMatch(/plugin id 'ssim' is already registered by \.\/my-plugins\/ssim/);
    }
  });
});

describe('an LLM family described by its family.json', () => {
  it('gives the descriptor its schema defaults and LoRA targets; a broken description is a plugin error naming the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmed-family-'));
    try {
      const good = JSON.parse(readFileSync(join(repoRoot, 'plugins/phi3/family.json'), 'utf8'));
      write(join(dir, 'family.json'), JSON.stringify(good));
      const url = pathToFileURL(join(dir, 'src', 'index.ts')).href;
      const family = readLLMFamily(url);
      const d = llmBackboneDescriptor({ ...family, python: { root: dir, module: 'x', factory: 'build' } });
      const options = pluginOptions(d, {}, 'phi3');
      expect(options).toMatchObject({ checkpoint: good.defaults.checkpoint, hiddenSize: 3072, layers: [15] });
      const withLora = d.resolve!({ ...(options as unknown as LLMBackboneOptions), lora: { rank: 4 } as never }, { workspaceRoot: dir });
      expect(withLora.lora!.targets).toEqual(['qkv_proj']);
      for (const [edit, message] of [
        [(f: any) => { delete f.transformers.decoderLayer; }, /needs "transformers\.decoderLayer"/],
        [(f: any) => { f.modelTypes = []; }, /needs "modelTypes"/],
        [(f: any) => { f.defaults.hiddenSize = 'wide'; }, /needs "defaults"/],
      ] as const) {
        const broken = structuredClone(good);
        edit(broken);
        write(join(dir, 'family.json'), JSON.stringify(broken));
        try {
          readLLMFamily(url);
          throw new Error('expected a plugin error');
        } catch (e) {
          expect(isLlmedError(e) && e.kind).toBe('plugin');
          expect(isLlmedError(e) && e.where).toBe(join(dir, 'family.json'));
          expect((e as Error).message).toMatch(message);
        }
      }
      rmSync(join(dir, 'family.json'));
      expect(() => readLLMFamily(url)).toThrow(/does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('third-party plugins outside the llmed checkout', () => {
  it('resolve @llmed/core and @llmed/imaging with no node_modules of their own (llmed serves its packages)', () => {
    const outside = mkdtempSync(join(tmpdir(), 'llmed-outside-'));
    try {
      write(join(outside, 'plugins/ssim/package.json'), JSON.stringify({ name: 'ssim-loss', type: 'module', main: 'index.ts' }));
      write(join(outside, 'plugins/ssim/index.ts'), `
import { definePlugin, pluginModule } from '@llmed/core';
import { nanMean } from '@llmed/imaging';
export default pluginModule(definePlugin({ id: 'ssim', kind: 'Loss', summary: 'outside the checkout, mean ' + nanMean([1, NaN]), options: { type: 'object', properties: {} }, example: { options: {}, inputs: {} } }));
`);
      write(join(outside, 'ws/workspace.json'), JSON.stringify({ experiments: {}, plugins: [join(repoRoot, 'plugins') + '/*', join(outside, 'plugins/ssim')] }));
      const r = spawnSync(process.execPath, [join(repoRoot, 'packages/cli/bin/llmed.mjs'), 'plugins', 'list', '--kind', 'Loss'], {
        cwd: join(outside, 'ws'), env: { ...process.env, LLMED_WORKSPACE: join(outside, 'ws') }, encoding: 'utf8', timeout: 60_000,
      });
      expect(r.stderr).not.toMatch(/error\[/);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/ssim .*outside the checkout, mean 1/);
      expect(r.stdout).toMatch(/mse .*plugins\/mse/);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });
});

/**
 * The whole way a third party goes: a plugin package for an LLM family llmed does not ship (Mistral,
 * through transformers' Mistral classes), written by `llmed plugins new` into a folder outside plugins/
 * and outside the checkout, filled in (family.json only), checked, trained a few steps on a tiny real-format
 * checkpoint and exported to ONNX, with nothing inside llmed's packages changed; and a family whose classes
 * transformers lacks fails the config check naming the config.
 */
describe('a third-party LLM family plugin (Mistral) from an empty folder to an exported model', () => {
  const venvPython = join(repoRoot, '.venv', 'bin', 'python');
  it.skipIf(!existsSync(venvPython))('is generated, filled in, checked, trained and exported from outside plugins/', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'llmed-mistral-'));
    try {
      const ws = await makeTinyWorkspace(join(outside, 'ws'));
      const cli = (args: string[], timeoutMs = 240_000) => llmed(args, { cwd: ws.root, env: { LLMED_WORKSPACE: ws.root }, timeoutMs });
      const pluginDir = join(outside, 'llmed-plugin-mistral');

      // 1. the template, outside the workspace: it is listed in workspace.json by its absolute path
      const made = cli(['plugins', 'new', 'mistral', '--kind', 'LLMBackbone', '--out', pluginDir]);
      expect(made.status, made.stderr).toBe(0);
      expect(JSON.parse(readFileSync(join(ws.root, 'workspace.json'), 'utf8')).plugins).toContain(pluginDir);
      // its guess of the transformers classes is Mistral's own names; the author fills in the rest
      const familyFile = join(pluginDir, 'family.json');
      const family = JSON.parse(readFileSync(familyFile, 'utf8'));
      expect(family.transformers).toMatchObject({ module: 'transformers.models.mistral.modeling_mistral', config: 'MistralConfig', decoderLayer: 'MistralDecoderLayer', rotaryEmbedding: 'MistralRotaryEmbedding', rmsNorm: 'MistralRMSNorm', causalLM: 'MistralForCausalLM' });
      Object.assign(family, {
        title: 'Mistral', huggingFaceRepo: 'mistralai/Mistral-7B-v0.1', loraTargets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
        defaults: { checkpoint: 'checkpoints/tiny-mistral', layers: [1], hiddenSize: 64, numLayers: 2 },
      });
      writeFileSync(familyFile, `${JSON.stringify(family, null, 2)}\n`);

      // 2. a tiny Mistral checkpoint in the real on-disk format, written by transformers itself
      const ckpt = join(ws.root, 'checkpoints', 'tiny-mistral');
      const built = spawnSync(venvPython, ['-c', [
        'import sys, torch, transformers',
        'torch.manual_seed(0)',
        'c = transformers.MistralConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, vocab_size=96, sliding_window=16)',
        'transformers.MistralForCausalLM(c).save_pretrained(sys.argv[1])',
      ].join('\n'), ckpt], { encoding: 'utf8', timeout: 120_000 });
      expect(built.status, built.stderr).toBe(0);
      expect(readdirSync(ckpt).sort()).toEqual(expect.arrayContaining(['config.json', 'model.safetensors']));

      // 3. the generated Python tests pass against the filled-in family: the tiny layer loads strictly and runs
      const pytest = spawnSync(venvPython, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', join(pluginDir, 'tests')], {
        cwd: pluginDir, encoding: 'utf8', timeout: 180_000, env: { ...process.env, PYTHONPATH: join(repoRoot, 'bridge', 'python') },
      });
      expect(pytest.status, pytest.stdout + pytest.stderr).toBe(0);
      expect(pytest.stdout).toMatch(/2 passed/);

      // 4. an experiment that uses it, with LoRA on the Mistral layer
      const cfg = tinyConfig(2);
      cfg.model.block = [
        { use: 'adapter0', with: { out: 64, hidden: 16 } },
        { use: 'mistral', name: 'llm', with: { lora: { rank: 2 } } },
        { use: 'inner-mlp', with: { hidden: 16 } },
      ];
      writeFileSync(ws.configFile, JSON.stringify(cfg, null, 2));
      const listed = cli(['plugins', 'list', '--kind', 'LLMBackbone']);
      expect(listed.status, listed.stderr).toBe(0);
      expect(listed.stdout).toMatch(/mistral .*Mistral decoder layer/);
      const check = cli(['config', 'check', 'tiny']);
      expect(check.stderr).not.toMatch(/error\[/);
      expect(check.status).toBe(0);
      expect(check.stdout).toMatch(/Python side of model\.block\[1\] builds/);

      // 5. train two steps and export
      const trained = cli(['train', 'tiny'], 400_000);
      expect(trained.status, trained.stderr).toBe(0);
      const runDir = join(ws.root, trained.stdout.match(/run folder: (.+)/)![1].trim());
      const spec = JSON.parse(readFileSync(join(runDir, 'spec.json'), 'utf8'));
      expect(spec.block[1]).toMatchObject({ id: 'mistral', kind: 'LLMBackbone' });
      expect(spec.block[1].options.lora).toEqual({ rank: 2, alpha: 64, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] });
      const exported = cli(['export', runDir], 400_000);
      expect(exported.status, exported.stderr).toBe(0);
      expect(exported.stdout).toMatch(/model\.onnx: .* 4 LoRA layers merged/);
      expect(exported.stdout).toMatch(/: passed/);
      const manifest = JSON.parse(readFileSync(join(runDir, 'export', 'manifest.json'), 'utf8'));
      expect(manifest.model.loraLayersMerged).toBe(4);
      expect(statSync(join(runDir, 'export', 'model.onnx')).size).toBeGreaterThan(0);

      // 6. a family whose transformers classes do not exist fails the config check, naming the config
      const broken = join(outside, 'llmed-plugin-brokenfam');
      expect(cli(['plugins', 'new', 'brokenfam', '--kind', 'LLMBackbone', '--out', broken]).status).toBe(0);
      const brokenFamily = JSON.parse(readFileSync(join(broken, 'family.json'), 'utf8'));
      Object.assign(brokenFamily, { modelTypes: ['notatransformer'], defaults: { checkpoint: 'checkpoints/broken', layers: [1], hiddenSize: 64, numLayers: 2 } });
      brokenFamily.transformers.module = 'transformers.models.notatransformer.modeling_notatransformer';
      writeFileSync(join(broken, 'family.json'), JSON.stringify(brokenFamily));
      write(join(ws.root, 'checkpoints', 'broken', 'config.json'), JSON.stringify({ model_type: 'notatransformer', hidden_size: 64, num_hidden_layers: 2 }));
      const brokenCfg = tinyConfig(1);
      brokenCfg.model.block = [{ use: 'adapter0', with: { out: 64, hidden: 16 } }, { use: 'brokenfam' }];
      write(join(ws.root, 'configs', 'brokenfam', 'config.json'), JSON.stringify(brokenCfg));
      const wsJson = JSON.parse(readFileSync(join(ws.root, 'workspace.json'), 'utf8'));
      wsJson.experiments.brokenfam = 'configs/brokenfam/config.json';
      writeFileSync(join(ws.root, 'workspace.json'), JSON.stringify(wsJson));
      const bad = cli(['config', 'check', 'brokenfam']);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/^error\[plugin\] configs\/brokenfam\/config\.json: model\.block\[1\] \(brokenfam\): the Python side cannot be built: .*notatransformer/);
    } finally {
      if (!process.env.KEEP) rmSync(outside, { recursive: true, force: true });
    }
  }, 900_000);
});
