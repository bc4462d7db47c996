/**
 * Publishing the prepared folder never loses the previous one: a failure at the swap point (old folder moved
 * aside, new one not yet in place) puts the old folder back, and a process killed right there leaves it
 * aside, where the next prepare finds and restores it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadExperimentConfig, loadWorkspace, publishFolder, recoverFolder } from '@llmed/core';
import { prepareExperiment, preparedDir } from '@llmed/data';
import { makeTinyWorkspace } from '../../../test/helpers/tiny-workspace.ts';
import { repoRoot, tempDir } from '../../../test/helpers/workspace.ts';

/** Every file of a folder and its SHA-256 (names relative to the folder). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!f.isFile()) continue;
    const path = join(f.parentPath, f.name);
    out[path.slice(dir.length + 1)] = createHash('sha256').update(readFileSync(path)).digest('hex');
  }
  return out;
}

const leftovers = (dir: string) => readdirSync(join(dir, '..')).filter((f) => /\.(old|tmp)-\d+$/.test(f));

describe('prepared folder publishing', () => {
  const tmp = tempDir('llmed-publish-');
  let root: string;
  let configFile: string;
  beforeAll(async () => {
    ({ root, configFile } = await makeTinyWorkspace(join(tmp.dir, 'ws')));
  });
  afterAll(() => tmp.cleanup());

  it('a failure at the swap point leaves the old prepared folder as it was', async () => {
    const ws = loadWorkspace(root);
    const cfg = loadExperimentConfig(configFile);
    const first = await prepareExperiment(ws, 'tiny', cfg);
    expect(first.skipped).toBe(false);
    const before = snapshot(first.dir);
    expect(Object.keys(before)).toContain('pairs.json');
    await expect(prepareExperiment(ws, 'tiny', cfg, { force: true, publish: { afterAside: () => { throw new Error('disk full at the swap'); } } }))
      .rejects.toThrow('disk full at the swap');
    expect(snapshot(first.dir)).toEqual(before);
    expect(leftovers(first.dir)).toEqual([]);
  });

  it('a prepare killed at the swap point: the next prepare restores the old folder from aside', async () => {
    const dir = preparedDir(root, 'tiny');
    const before = snapshot(dir);
    // A child prepares with --force and is SIGKILLed between "old folder aside" and "new folder in".
    const script = join(tmp.dir, 'killed-at-swap.mts');
    writeFileSync(script, `
      import { loadExperimentConfig, loadWorkspace } from ${JSON.stringify(join(repoRoot, 'packages/core/src/index.ts'))};
      import { prepareExperiment } from ${JSON.stringify(join(repoRoot, 'packages/data/src/index.ts'))};
      await prepareExperiment(loadWorkspace(${JSON.stringify(root)}), 'tiny', loadExperimentConfig(${JSON.stringify(configFile)}),
        { force: true, publish: { afterAside: () => process.kill(process.pid, 'SIGKILL') } });
    `);
    // node itself (tsx as a loader), so the process killed is the child this test waits for
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, encoding: 'utf8' });
    expect(r.signal, r.stderr).toBe('SIGKILL');
    expect(existsSync(dir)).toBe(false); // the crash left no prepared folder under its own name ...
    const aside = leftovers(dir).filter((f) => f.includes('.old-'));
    expect(aside).toHaveLength(1); // ... but the old one aside, complete
    expect(snapshot(join(dir, '..', aside[0]))).toEqual(before);
    const again = await prepareExperiment(loadWorkspace(root), 'tiny', loadExperimentConfig(configFile));
    expect(again.skipped).toBe(true); // restored, and still current: nothing to prepare
    expect(snapshot(dir)).toEqual(before);
    expect(leftovers(dir)).toEqual([]);
  });

  it('publishFolder replaces a folder and recoverFolder drops an aside copy once the target exists', () => {
    const base = join(tmp.dir, 'plain');
    const target = join(base, 'out');
    mkdirSync(target, { recursive: true });
    writeFileSync(join(target, 'v'), 'old');
    const staging = join(base, 'out.tmp-1');
    mkdirSync(staging);
    writeFileSync(join(staging, 'v'), 'new');
    publishFolder(staging, target);
    expect(readFileSync(join(target, 'v'), 'utf8')).toBe('new');
    expect(readdirSync(base)).toEqual(['out']);
    // an aside copy of a process that is gone (pid 2^22 + 1 is above Linux's pid limit) next to a newer target
    const stale = join(base, `out.old-${2 ** 22 + 1}`);
    mkdirSync(stale);
    expect(recoverFolder(target)).toEqual([`removed out.old-${2 ** 22 + 1}`]);
    expect(readdirSync(base)).toEqual(['out']);
  });
});
