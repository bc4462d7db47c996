/**
 * One environment variable names the workspace in both languages: LLMED_WORKSPACE. TypeScript's
 * findWorkspaceRoot and Python's workspace-relative paths (LLM checkpoints, plugin roots, export's
 * prepared data) resolve against the same folder when it is set.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findWorkspaceRoot, isLlmedError } from '@llmed/core';
import { repoRoot, tempDir } from '../helpers/workspace.ts';

const python = join(repoRoot, '.venv', 'bin', 'python');
const tmp = tempDir('llmed-ws-env-');
afterAll(() => tmp.cleanup());

describe('LLMED_WORKSPACE', () => {
  const ws = join(tmp.dir, 'my workspace');
  mkdirSync(ws, { recursive: true });
  writeFileSync(join(ws, 'workspace.json'), JSON.stringify({ experiments: {}, plugins: [] }));
  writeFileSync(join(ws, 'package.json'), JSON.stringify({ name: 'ws', private: true }));

  it('is read by TypeScript (findWorkspaceRoot) and by Python (llmed.files, llm, assemble) alike', { skip: !existsSync(python) }, () => {
    const before = process.env.LLMED_WORKSPACE;
    process.env.LLMED_WORKSPACE = ws;
    let tsRoot: string;
    try {
      tsRoot = findWorkspaceRoot(tmp.dir);
    } finally {
      if (before === undefined) delete process.env.LLMED_WORKSPACE;
      else process.env.LLMED_WORKSPACE = before;
    }
    expect(tsRoot).toBe(ws);
    const code = [
      'import json',
      'from llmed.files import WORKSPACE_ENV, workspace_root_from_env',
      'from llmed.llm import resolve_checkpoint_dir',
      'from llmed.assemble import _workspace_root',
      'print(json.dumps({"name": WORKSPACE_ENV, "root": workspace_root_from_env(), "checkpoint": str(resolve_checkpoint_dir("checkpoints/tiny")), "assemble": str(_workspace_root({}, None))}))',
    ].join('\n');
    const r = spawnSync(python, ['-c', code], {
      cwd: tmp.dir, encoding: 'utf8',
      env: { ...process.env, LLMED_WORKSPACE: ws, PYTHONPATH: join(repoRoot, 'bridge', 'python') },
    });
    expect(r.status, r.stderr).toBe(0);
    const py = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(py).toEqual({ name: 'LLMED_WORKSPACE', root: ws, checkpoint: join(tsRoot, 'checkpoints', 'tiny'), assemble: tsRoot });
  });

  it('pointing at a folder without workspace.json is a config error naming the variable', () => {
    const before = process.env.LLMED_WORKSPACE;
    process.env.LLMED_WORKSPACE = tmp.dir;
    try {
      findWorkspaceRoot(tmp.dir);
      throw new Error('expected a config error');
    } catch (e) {
      expect(isLlmedError(e) && e.kind).toBe('config');
      expect((e as Error).message).toContain('LLMED_WORKSPACE');
    } finally {
      if (before === undefined) delete process.env.LLMED_WORKSPACE;
      else process.env.LLMED_WORKSPACE = before;
    }
  });
});
