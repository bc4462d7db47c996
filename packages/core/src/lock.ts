/**
 * One writer per output. Every command that builds a folder under a temporary name and renames it into
 * place (data prepare, export, evaluate, register, a training run) holds `<target>.lock` while it works, so a
 * second llmed writing the same target stops at once with one typed error instead of racing the first to
 * an ENOTEMPTY/ENOENT halfway through. The lock file holds the writer's pid; a lock whose process is gone
 * (a kill -9) is stale and taken over.
 */
import { mkdirSync, openSync, readFileSync, unlinkSync, writeSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import { LlmedError } from './errors.ts';

const held = new Map<string, string>();
let exitHookInstalled = false;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function holderOf(lockFile: string): { pid: number; command?: string } | null {
  try {
    const v = JSON.parse(readFileSync(lockFile, 'utf8')) as { pid?: unknown; command?: unknown };
    return Number.isInteger(v.pid) ? { pid: v.pid as number, command: typeof v.command === 'string' ? v.command : undefined } : null;
  } catch {
    return null;
  }
}

/**
 * Take the write lock of `target` (a folder or file path); returns the function that releases it. Throws
 * `LlmedError('busy', 'another llmed is writing <target>')` while another live process holds it.
 */
export function acquireWriteLock(target: string): () => void {
  const lockFile = `${target}.lock`;
  mkdirSync(dirname(lockFile), { recursive: true });
  const content = `${JSON.stringify({ pid: process.pid, command: process.argv.slice(2).join(' '), since: new Date().toISOString() })}\n`;
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(lockFile, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw e;
      const holder = holderOf(lockFile);
      if (holder && (holder.pid === process.pid ? held.has(lockFile) : alive(holder.pid))) {
        throw new LlmedError('busy', `another llmed is writing ${target} (pid ${holder.pid}${holder.command ? `: llmed ${holder.command}` : ''})`, {
          where: target, hint: `wait for it to finish, or stop it; ${lockFile} is removed when it ends`, exitCode: 75,
        });
      }
      // The writer is gone (killed) or the file is unreadable: a stale lock.
      try { unlinkSync(lockFile); } catch { /* taken by another process meanwhile */ }
      continue;
    }
    try { writeSync(fd, content); } finally { closeSync(fd); }
    break;
  }
  held.set(lockFile, content);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // process.exit() from a signal handler skips `finally`: release what is still held.
    process.on('exit', () => { for (const file of [...held.keys()]) release(file); });
  }
  return () => release(lockFile);
}

function release(lockFile: string): void {
  const mine = held.get(lockFile);
  if (mine === undefined) return;
  held.delete(lockFile);
  try {
    if (readFileSync(lockFile, 'utf8') === mine) unlinkSync(lockFile);
  } catch {
    // already gone
  }
}

/** Run `fn` holding the write lock of `target`. */
export async function withWriteLock<T>(target: string, fn: () => Promise<T> | T): Promise<T> {
  const release = acquireWriteLock(target);
  try {
    return await fn();
  } finally {
    release();
  }
}
