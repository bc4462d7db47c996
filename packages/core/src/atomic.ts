/**
 * Atomic file writes and folder publishing: the one implementation of each on the TypeScript side. The
 * Python twin is bridge/python/llmed/atomic.py; both use the same names on disk, so either language
 * cleans up after the other.
 *
 * Files go to `<file>.tmp-<pid>` and are renamed over `<file>`: a reader sees the old bytes or the new,
 * never half. Folders are built completely under `stagingFolder(target)` (`<target>.tmp-<pid>`) and
 * published with `publishFolder`: an existing target is renamed aside to `<target>.old-<pid>`, the new folder
 * is renamed into place, and only then is the aside folder removed; nothing is deleted before its
 * replacement is in place. A crash between the two renames leaves the old folder under its aside name;
 * `recoverFolder`, called before the next write of that target, renames it back (or drops it when a newer
 * target exists) and removes staging folders of processes that are gone.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LlmedError } from './errors.ts';

/** How a failed write is reported: `(file, message)` → the error to throw. Default: a data error naming the file. */
export type WriteFailure = (where: string, message: string) => Error;
const dataFailure: WriteFailure = (where, message) => new LlmedError('data', message, { where });

function failure(e: unknown, path: string, fail: WriteFailure): Error {
  const err = e as NodeJS.ErrnoException;
  return fail(path, `cannot write file: ${err.code ?? err.message}`);
}

/** Write `bytes` to `path` through `<path>.tmp-<pid>` and a rename; the temporary file is removed on failure. */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string, fail: WriteFailure = dataFailure): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw failure(e, path, fail);
  }
}

/** `writeFileAtomic` for callers that cannot await (status files written from synchronous code). */
export function writeFileAtomicSync(path: string, bytes: Uint8Array | string, fail: WriteFailure = dataFailure): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* never written */ }
    throw failure(e, path, fail);
  }
}

/** This process's staging name for `target`: beside it, so the final rename stays on one file system. */
export function stagingFolder(target: string): string {
  return `${target}.tmp-${process.pid}`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // someone else's live process
  }
}

/**
 * Undo what a crash in `publishFolder` (or while staging) left beside `target`: an aside folder of a process
 * that is gone is renamed back when `target` is missing (the crash fell between the two renames) and removed
 * when `target` exists; staging folders of dead processes are removed. Call it holding the target's write
 * lock, if it has one. Returns one line per thing done.
 */
export function recoverFolder(target: string): string[] {
  const parent = dirname(target);
  const name = basename(target);
  if (!existsSync(parent)) return [];
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`^${escaped}\\.(old|tmp)-(\\d+)$`);
  const found = readdirSync(parent)
    .map((entry) => ({ entry, m: re.exec(entry) }))
    .filter((x): x is { entry: string; m: RegExpExecArray } => x.m !== null)
    .map(({ entry, m }) => ({ entry, what: m[1], pid: Number(m[2]) }))
    .sort((a, b) => a.pid - b.pid); // several asides: the newest one is restored
  const done: string[] = [];
  for (const { entry, what, pid } of found) {
    if (pid === process.pid || pidAlive(pid)) continue;
    const path = join(parent, entry);
    if (what === 'old' && !existsSync(target)) {
      renameSync(path, target);
      done.push(`restored ${name} from ${entry}`);
    } else {
      rmSync(path, { recursive: true, force: true });
      done.push(`removed ${entry}`);
    }
  }
  return done;
}

/** Test hook: called between moving the old target aside and moving the new one in (simulates a crash there). */
export interface PublishHooks { afterAside?: () => void }

/**
 * Move the complete folder `staging` to `target`. An existing target is renamed aside first and removed only
 * after the new folder is in place; if moving the new one in fails, the old one is put back.
 */
export function publishFolder(staging: string, target: string, hooks: PublishHooks = {}): void {
  mkdirSync(dirname(target), { recursive: true });
  let old: string | null = null;
  let present = false;
  try { lstatSync(target); present = true; } catch { /* no target yet */ }
  if (present) {
    old = `${target}.old-${process.pid}`;
    rmSync(old, { recursive: true, force: true });
    renameSync(target, old);
  }
  try {
    hooks.afterAside?.();
    renameSync(staging, target);
  } catch (e) {
    if (old) renameSync(old, target);
    throw e;
  }
  if (old) rmSync(old, { recursive: true, force: true });
}
