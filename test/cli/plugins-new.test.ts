/**
 * `llmed plugins new <id> --kind <Kind>` writes a plugin folder of the first-party shape into a workspace,
 * lists it in workspace.json, and what it writes works as written: `plugins list` shows it with the output
 * shape its rule computes, `config check` composes an experiment that uses the new encoder, adapter, loss
 * and metric, the generated TypeScript and Python tests pass, and one training step runs through it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyWorkspace, tinyConfig, type TinyWorkspace } from '../helpers/tiny-workspace.ts';
import { llmed, repoRoot } from '../helpers/workspace.ts';

const python = join(repoRoot, '.venv', 'bin', 'python');
const haveVenv = existsSync(python);
// Inside the checkout, so that the generated tests' `@llmed/core` imports resolve through node_modules.
const root = join(repoRoot, '.cache', `plugins-new-${process.pid}`);
let ws: TinyWorkspace;
const KINDS = ['Encoder', 'Adapter', 'Loss', 'Metric', 'LLMBackbone'] as const;
const cli = (args: string[], timeoutMs = 120_000) => llmed(args, { cwd: ws.root, env: { LLMED_WORKSPACE: ws.root }, timeoutMs });

beforeAll(async () => {
  ws = await makeTinyWorkspace(root);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('llmed plugins new', () => {
  it('writes a plugin folder per kind and registers it in workspace.json', () => {
    for (const kind of KINDS) {
      const id = `my-${kind.toLowerCase()}`;
      const r = cli(['plugins', 'new', id, '--kind', kind]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(`registered it in workspace.json (plugins: "./plugins/${id}")`);
      const dir = join(ws.root, 'plugins', id);
      for (const f of ['package.json', 'src/index.ts', `tests/${id}.test.ts`, 'README.md']) expect(existsSync(join(dir, f)), f).toBe(true);
      const module = `llmed_${id.replaceAll('-', '_')}`;
      expect(existsSync(join(dir, 'python', module, '__init__.py'))).toBe(kind !== 'Metric');
      expect(existsSync(join(dir, 'tests', `test_${module}.py`))).toBe(kind !== 'Metric');
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      expect(pkg.exports).toEqual({ '.': './src/index.ts' });
      expect(pkg.llmed?.python).toBe(kind === 'Metric' ? undefined : `python/${module}`);
    }
    const listed = JSON.parse(readFileSync(join(ws.root, 'workspace.json'), 'utf8')).plugins;
    expect(listed.slice(1)).toEqual(KINDS.map((k) => `./plugins/my-${k.toLowerCase()}`));
    expect(readFileSync(join(ws.root, 'plugins', 'my-adapter', 'src', 'index.ts'), 'utf8')).toMatch(/export default pluginModule\(descriptor\)/);
  });

  it('lists the new plugins with their kinds and the output shapes of their examples', () => {
    const r = cli(['plugins', 'list', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const byId = new Map((JSON.parse(r.stdout) as { id: string; kind: string; source: string; output: unknown }[]).map((d) => [d.id, d]));
    for (const kind of KINDS) expect(byId.get(`my-${kind.toLowerCase()}`)).toMatchObject({ kind, source: `./plugins/my-${kind.toLowerCase()}` });
    expect(byId.get('my-adapter')!.output).toEqual({ type: 'tokens', length: 8, width: 16, grid: [2, 2, 2] });
    expect((byId.get('my-encoder')!.output as { levels: unknown[] }).levels).toHaveLength(5);
    expect(byId.has('dice')).toBe(true); // next to the first-party plugins
  });

  it('composes an experiment that uses them (config check)', () => {
    const cfg = tinyConfig(1);
    cfg.model.encoder = { use: 'my-encoder', with: { channels: [2, 4, 4, 8, 8] } };
    cfg.model.block.push({ use: 'my-adapter' });
    cfg.loss.push({ use: 'my-loss', weight: 0.5 });
    cfg.evaluate.metrics.push('my-metric');
    writeFileSync(ws.configFile, JSON.stringify(cfg, null, 2));
    const r = cli(['config', 'check', 'tiny', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const spec = JSON.parse(r.stdout);
    expect(spec.encoder.id).toBe('my-encoder');
    expect(spec.block.map((n: { id: string }) => n.id)).toEqual(['adapter0', 'inner-mlp', 'my-adapter']);
    expect(spec.losses.map((n: { id: string }) => n.id)).toEqual(['mse', 'diffusion', 'my-loss']);
  });

  it('the generated tests pass as written (vitest and pytest)', { skip: !haveVenv, timeout: 240_000 }, () => {
    writeFileSync(join(ws.root, 'vitest.config.mjs'), "export default { test: { include: ['plugins/*/tests/**/*.test.ts'] } };\n");
    const v = spawnSync(join(repoRoot, 'node_modules', '.bin', 'vitest'), ['run', '--root', ws.root], { cwd: ws.root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' } });
    expect(v.status, v.stdout + v.stderr).toBe(0);
    // colours may still be on when the outer runner forces them: compare the text without escape sequences
    const plain = v.stdout.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '');
    expect(plain).toMatch(/Tests\s+5 passed/);
    const p = spawnSync(python, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'plugins'], {
      cwd: ws.root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, PYTHONPATH: join(repoRoot, 'bridge', 'python') },
    });
    expect(p.status, p.stdout + p.stderr).toBe(0);
    expect(p.stdout).toMatch(/4 passed/);
  });

  it('trains one step through the new encoder, adapter and loss', { skip: !haveVenv, timeout: 300_000 }, () => {
    const r = cli(['train', 'tiny', '--iterations', '1'], 300_000);
    expect(r.status, r.stderr).toBe(0);
    const runDir = join(ws.root, r.stdout.match(/run folder: (.+)/)![1].trim());
    const spec = JSON.parse(readFileSync(join(runDir, 'spec.json'), 'utf8'));
    expect(spec.encoder.id).toBe('my-encoder');
    const log = readFileSync(join(runDir, 'log.jsonl'), 'utf8');
    expect(log).toMatch(/"my-loss"/);
  });

  it('refuses a bad id, an id already registered, a kind without a template and an existing folder', () => {
    const bad = cli(['plugins', 'new', 'My_Plugin', '--kind', 'Loss']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/^error\[usage\] .*plugin id 'My_Plugin' is not valid/m);
    const taken = cli(['plugins', 'new', 'dice', '--kind', 'Metric']);
    expect(taken.stderr).toMatch(/^error\[plugin\] .*plugin id 'dice' is already registered/m);
    const decoder = cli(['plugins', 'new', 'my-decoder', '--kind', 'Decoder']);
    expect(decoder.stderr).toMatch(/no template for kind 'Decoder'/);
    expect(decoder.stderr).toMatch(/voxelmorph-decoder/);
    const unknown = cli(['plugins', 'new', 'x', '--kind', 'Widget']);
    expect(unknown.stderr).toMatch(/unknown kind 'Widget'/);
    writeFileSync(join(ws.root, 'plugins', 'not-a-plugin'), 'a file in the way');
    const exists = cli(['plugins', 'new', 'not-a-plugin', '--kind', 'Loss']);
    expect(exists.stderr).toMatch(/already exists/);
    expect(existsSync(join(ws.root, 'plugins', `not-a-plugin.tmp-${process.pid}`))).toBe(false);
    expect(JSON.parse(readFileSync(join(ws.root, 'workspace.json'), 'utf8')).plugins).not.toContain('./plugins/not-a-plugin');
  });
});
