/**
 * A third-party plugin is an npm package (or a folder) listed in workspace.json; nothing in llmed changes
 * to accept it. The test builds a throw-away workspace with one of each, registers a new LLM family and a
 * new loss, and composes a config that uses them.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
import { dice } from '@llmed/imaging';
export default pluginModule(definePlugin({ id: 'ssim', kind: 'Loss', summary: 'outside the checkout, dice ' + dice(Int32Array.of(1), Int32Array.of(1), [1]).mean, options: { type: 'object', properties: {} }, example: { options: {}, inputs: {} } }));
`);
      write(join(outside, 'ws/workspace.json'), JSON.stringify({ experiments: {}, plugins: [join(repoRoot, 'plugins') + '/*', join(outside, 'plugins/ssim')] }));
      const r = spawnSync(process.execPath, [join(repoRoot, 'packages/cli/bin/llmed.mjs'), 'plugins', 'list', '--kind', 'Loss'], {
        cwd: join(outside, 'ws'), env: { ...process.env, LLMED_WORKSPACE: join(outside, 'ws') }, encoding: 'utf8', timeout: 60_000,
      });
      expect(r.stderr).not.toMatch(/error\[/);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/ssim .*outside the checkout, dice 1/);
      expect(r.stdout).toMatch(/mse .*plugins\/mse/);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });
});
