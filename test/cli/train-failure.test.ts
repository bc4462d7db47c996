/**
 * A training run that fails: a run folder this call created with no checkpoint in it is removed, and an
 * error the config caused names the experiment's config file, not the run folder's copy.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LlmedError } from '@llmed/core';
import { failedRun } from '../../packages/cli/src/train.ts';
import { tempDir } from '../helpers/workspace.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

function runFolder(name: string, checkpoint: boolean): string {
  const dir = join(tmp.dir, name);
  mkdirSync(join(dir, 'checkpoints'), { recursive: true });
  writeFileSync(join(dir, 'spec.json'), '{}');
  writeFileSync(join(dir, 'config.json'), '{}');
  if (checkpoint) writeFileSync(join(dir, 'checkpoints', 'last.json'), '{}');
  return dir;
}

describe('failedRun', () => {
  const configFile = join(tmp.dir, 'configs', 'demo', 'config.json');

  it('a config error from Python names the config file, and the half-made run folder is gone', () => {
    const runDir = runFolder('fresh', false);
    const err = failedRun(new LlmedError('plugin', "cannot build 'llama3' from its options", { where: join(runDir, 'spec.json') }), { runDir, createdRunDir: true, configFile }) as LlmedError;
    expect(err.where).toBe(relative(process.cwd(), configFile));
    expect(err.format()).toMatch(/error\[plugin\] .*configs\/demo\/config\.json: cannot build 'llama3'/);
    expect(err.hint).toMatch(/the run folder .*fresh was removed \(no checkpoint had been written\)/);
    expect(existsSync(runDir)).toBe(false);
  });

  it('a run with a checkpoint, or a folder that existed before, is kept; other errors keep their place', () => {
    const withCheckpoint = runFolder('trained', true);
    const nan = new LlmedError('data', 'loss became NaN at step 12', { where: withCheckpoint });
    expect(failedRun(nan, { runDir: withCheckpoint, createdRunDir: true, configFile })).toBe(nan);
    expect(existsSync(withCheckpoint)).toBe(true);
    const existing = runFolder('given', false);
    const err = failedRun(new LlmedError('shape', 'decoder input does not fit'), { runDir: existing, createdRunDir: false, configFile }) as LlmedError;
    expect(existsSync(existing)).toBe(true);
    expect(err.where).toBe(relative(process.cwd(), configFile));
  });
});
