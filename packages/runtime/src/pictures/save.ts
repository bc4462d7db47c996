/**
 * Writing pictures: to a temporary name in the target folder, then renamed, so a reader (or a crash)
 * never sees half a PNG. With `meta: true` the picture's meta (box-plot label order and statistics, slice
 * position) is written next to it as `<name>.json`, the same way.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '@llmed/core';
import type { Picture } from './panels.ts';

async function writeAtomic(file: string, bytes: Uint8Array | string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, bytes);
}

/** Write `picture` as a PNG at `file` (atomically); optionally its meta as JSON beside it. Returns the paths written. */
export async function savePicture(file: string, picture: Picture, opts: { meta?: boolean } = {}): Promise<string[]> {
  await writeAtomic(file, picture.png);
  const written = [file];
  if (opts.meta && picture.meta) {
    const json = file.replace(/\.png$/i, '') + '.json';
    await writeAtomic(json, JSON.stringify({ width: picture.width, height: picture.height, ...picture.meta }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
    written.push(json);
  }
  return written;
}
