/** Test helpers: the repository's workspace, temp folders, and running the real `llmed` binary. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliBin = join(repoRoot, 'packages', 'cli', 'bin', 'llmed.mjs');
export const sharedData = process.env.LLMED_SHARED_DATA ?? resolve(repoRoot, '..', 'shared', 'data');
export const hasSharedData = existsSync(sharedData);
export const mricron = '/usr/share/mricron/templates';
export const hasMricron = existsSync(join(mricron, 'ch2bet.nii.gz'));

if (!hasSharedData) console.warn(`[llmed tests] ${sharedData} is absent: tests on the shared real volumes are SKIPPED`);
if (!hasMricron) console.warn(`[llmed tests] ${mricron} is absent (apt-get install mricron-data): tests on Colin27/AAL are SKIPPED`);

export function tempDir(prefix = 'llmed-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface CliResult { status: number; stdout: string; stderr: string }

/** Run the real CLI as a user would (a child process), from `cwd` (default: the repo root). */
export function llmed(args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [cliBin, ...args], {
    cwd: opts.cwd ?? repoRoot,
    encoding: 'utf8',
    env: { ...process.env, FORCE_COLOR: '0', ...opts.env },
    timeout: opts.timeoutMs ?? 120_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
