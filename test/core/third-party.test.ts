/**
 * A third-party plugin is an npm package (or a folder) listed in workspace.json; nothing in llmed changes
 * to accept it. The test builds a throw-away workspace with one of each, registers a new LLM family and a
 * new loss, and composes a config that uses them.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { composeModel, isLlmedError, loadExperimentConfig, loadRegistry, loadWorkspace } from '@llmed/core';
import { repoRoot } from '../helpers/workspace.ts';

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

describe('config check builds the Python side of a third-party LLM family', () => {
  const venvPython = join(repoRoot, '.venv', 'bin', 'python');
  it.skipIf(!existsSync(venvPython))('passes for a transformers family with the usual class names (Mistral), fails naming the config when it cannot be built', () => {
    const dir = join(repoRoot, '.cache', `third-party-family-${process.pid}`);
    try {
      // a tiny Mistral checkpoint in the real format, and a checkpoint of a model type transformers does not know
      const built = spawnSync(venvPython, ['-c', [
        'import sys, json, transformers',
        'c = transformers.MistralConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, vocab_size=96, sliding_window=16)',
        'transformers.MistralForCausalLM(c).save_pretrained(sys.argv[1] + "/mistral")',
        'json.dump({"model_type": "notatransformer", "hidden_size": 64, "num_hidden_layers": 2}, open(sys.argv[1] + "/broken.json", "w"))',
      ].join('\n'), join(dir, 'ckpt')], { encoding: 'utf8' });
      expect(built.status, built.stderr).toBe(0);
      mkdirSync(join(dir, 'ckpt', 'broken'), { recursive: true });
      writeFileSync(join(dir, 'ckpt', 'broken', 'config.json'), readFileSync(join(dir, 'ckpt', 'broken.json')));
      for (const [id, modelType] of [['mistral', 'mistral'], ['brokenfam', 'notatransformer']] as const) {
        write(join(dir, `plugins/${id}/package.json`), JSON.stringify({ name: `llmed-plugin-${id}`, type: 'module', main: 'index.ts' }));
        write(join(dir, `plugins/${id}/index.ts`), `
import { llmBackboneDescriptor, pluginModule } from '@llmed/core';
export const descriptor = llmBackboneDescriptor({
  id: '${id}', title: '${id}', modelTypes: ['${modelType}'], huggingFaceRepo: 'someone/${id}',
  defaults: { checkpoint: 'ckpt/${id === 'mistral' ? 'mistral' : 'broken'}', layers: [1], hiddenSize: 64, numLayers: 2 },
  loraTargets: ['q_proj', 'v_proj'],
  python: { root: ${JSON.stringify(join(dir, `plugins/${id}/python`))}, module: 'llmed_${id}', factory: 'build' },
});
export default pluginModule(descriptor);
`);
        write(join(dir, `plugins/${id}/python/llmed_${id}/__init__.py`), `from llmed.llm import build_decoder_stack\nFAMILY = "${id}"\n\ndef build(options, inputs, workspace_root=None):\n    return build_decoder_stack(FAMILY, options, inputs, workspace_root=workspace_root)\n`);
        const cfg = loadExperimentConfig(join(repoRoot, 'configs/demo/config.json'));
        cfg.model.block = [{ use: 'adapter0', with: { out: 64, hidden: 32 } }, { use: id, with: { checkpoint: `ckpt/${id === 'mistral' ? 'mistral' : 'broken'}`, layers: [1], hiddenSize: 64, numLayers: 2 } }];
        write(join(dir, `configs/${id}/config.json`), JSON.stringify(cfg));
      }
      write(join(dir, 'workspace.json'), JSON.stringify({ experiments: { mistral: 'configs/mistral/config.json', brokenfam: 'configs/brokenfam/config.json' }, plugins: [join(repoRoot, 'plugins') + '/*', './plugins/mistral', './plugins/brokenfam'] }));
      const check = (name: string) => spawnSync(process.execPath, [join(repoRoot, 'packages/cli/bin/llmed.mjs'), 'config', 'check', name], {
        cwd: dir, env: { ...process.env, LLMED_WORKSPACE: dir }, encoding: 'utf8', timeout: 120_000,
      });
      const ok = check('mistral');
      expect(ok.stderr).not.toMatch(/error\[/);
      expect(ok.status).toBe(0);
      expect(ok.stdout).toMatch(/Python side of model\.block\[1\] builds/);
      const bad = check('brokenfam');
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/^error\[plugin\] configs\/brokenfam\/config\.json: model\.block\[1\] \(brokenfam\): the Python side cannot be built: .*notatransformer/);
    } finally {
      if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
