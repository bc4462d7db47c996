/**
 * Learning curves of training runs as PNG line plots (not a test): training loss (mean over windows of
 * steps), validation Dice, validation endpoint error (mm) and mean field magnitude (voxels) against the
 * step, one line per run, read from each run's log.jsonl (`step` and `val` events; the identity row at
 * step 0 is the unregistered baseline). Used by bench/results/learning-diagnosis.md.
 *
 *   npx tsx bench/training/learning-curves.ts <out prefix> "<label>=<run folder or log.jsonl>" ...
 *
 * Writes <prefix>-loss.png, -dice.png, -epe.png, -field.png (those with data) and <prefix>.json (the points).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '@llmed/core';
import { jsonNumbers, linePlot, savePicture, type LineSeries } from '@llmed/runtime';

type Point = [number, number];
interface Curves { loss: Point[]; dice: Point[]; epe: Point[]; field: Point[] }

/** The curves of one run's log; the training loss is averaged over windows of `window` steps. */
export function curvesOf(lines: string[], window = 10): Curves {
  const out: Curves = { loss: [], dice: [], epe: [], field: [] };
  let sum = 0, count = 0;
  for (const line of lines) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as Record<string, any>;
    if (e.event === 'step' && Number.isFinite(e.loss)) {
      sum += e.loss; count += 1;
      if (count === window) { out.loss.push([e.step - (window - 1) / 2, sum / count]); sum = 0; count = 0; }
    } else if (e.event === 'val') {
      if (Number.isFinite(e.dice)) out.dice.push([e.step, e.dice]);
      if (Number.isFinite(e.epe)) out.epe.push([e.step, e.epe]);
      if (Number.isFinite(e.fieldMagnitude)) out.field.push([e.step, e.fieldMagnitude]);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const [prefix, ...runs] = process.argv.slice(2);
  if (!prefix || runs.length === 0) throw new Error('usage: learning-curves.ts <out prefix> "<label>=<run folder or log.jsonl>" ...');
  const all: Record<string, Curves> = {};
  for (const arg of runs) {
    const at = arg.indexOf('=');
    if (at < 1) throw new Error(`'${arg}' is not <label>=<run folder or log.jsonl>`);
    const label = arg.slice(0, at);
    let file = arg.slice(at + 1);
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'log.jsonl');
    if (!existsSync(file)) throw new Error(`${file}: no such log`);
    all[label] = curvesOf(readFileSync(file, 'utf8').split('\n'));
  }
  const panels: [keyof Curves, string][] = [
    ['loss', 'training loss (mean of 10 steps)'], ['dice', 'validation Dice (nearest-neighbour labels)'],
    ['epe', 'validation endpoint error (mm, foreground)'], ['field', 'validation mean |u| (voxels)'],
  ];
  for (const [key, title] of panels) {
    const series: LineSeries[] = Object.entries(all).filter(([, c]) => c[key].length > 0).map(([name, c]) => ({ name, points: c[key] }));
    if (series.length === 0) continue;
    const file = `${prefix}-${key}.png`;
    await savePicture(file, linePlot(series, { title, xLabel: 'STEP', width: 560, height: 340 }));
    console.log(`[curves] ${file}`);
  }
  await writeFileAtomic(`${prefix}.json`, `${JSON.stringify(all, jsonNumbers, 1)}\n`);
}

await main();
