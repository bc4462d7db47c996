/**
 * Test helpers: where the real data lives (skipping visibly when it does not), temp folders, and a
 * bridge to the project's Python venv (nibabel/numpy/scipy) for cross-checks.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { isLlmedError, type ErrorKind } from '@llmed/core/errors';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SHARED_DATA = process.env.LLMED_SHARED_DATA ?? path.resolve(repoRoot, '../shared/data');
export const MRICRON = '/usr/share/mricron/templates';
export const VENV_PYTHON = path.join(repoRoot, '.venv/bin/python');

export const hasShared = existsSync(path.join(SHARED_DATA, 'brain'));
export const hasMricron = existsSync(path.join(MRICRON, 'ch2.nii.gz'));
export const hasPython = existsSync(VENV_PYTHON) && pythonHasNibabel();

function pythonHasNibabel(): boolean {
  try {
    execFileSync(VENV_PYTHON, ['-c', 'import nibabel, numpy, scipy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

if (!hasShared) console.warn(`[imaging tests] shared data folder ${SHARED_DATA} not found: tests on its real volumes are SKIPPED (set LLMED_SHARED_DATA)`);
if (!hasMricron) console.warn(`[imaging tests] ${MRICRON} not found: tests on the mricron templates are SKIPPED (apt-get install -y mricron-data)`);
if (!hasPython) console.warn(`[imaging tests] ${VENV_PYTHON} with nibabel/numpy/scipy not found: nibabel/scipy cross-checks are SKIPPED`);

export const shared = (...p: string[]) => path.join(SHARED_DATA, ...p);
export const mricron = (f: string) => path.join(MRICRON, f);

/** A fresh temp folder; call the returned cleanup in afterAll. */
export function makeTmp(prefix = 'llmed-imaging-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Run a Python snippet in the venv; it must print one JSON value on its last stdout line. */
export function runPython<T = unknown>(code: string, args: string[] = []): T {
  const out = execFileSync(VENV_PYTHON, ['-c', code, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

/** Assert that `fn` throws an LlmedError of `kind` whose where/message mention every string of `mentions`. */
export async function expectLlmedError(fn: () => unknown, kind: ErrorKind, mentions: Array<string | RegExp>): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected an error to be thrown').toBeDefined();
  expect(isLlmedError(caught), `expected LlmedError, got ${String(caught)}`).toBe(true);
  const err = caught as { kind: string; where?: string; message: string; format(): string };
  expect(err.kind).toBe(kind);
  const text = err.format();
  // One clear line (plus an optional hint line).
  expect(err.message.includes('\n')).toBe(false);
  for (const m of mentions) {
    if (typeof m === 'string') expect(text).toContain(m);
    else expect(text).toMatch(m);
  }
}
