/**
 * Which run a command means: a run folder path, or an experiment name (its newest run under
 * runs/<experiment>/ that has a checkpoint). Shared by export and evaluate.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { didYouMean, LlmedError } from '@llmed/core';
import { loadContext } from './context.ts';

export function isRunFolder(dir: string): boolean {
  return existsSync(join(dir, 'spec.json')) && existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'checkpoints'));
}

/** The run folder for `target` (a path, or an experiment name → its newest run with a checkpoint). */
export async function resolveRun(target: string): Promise<{ runDir: string; experiment: string }> {
  const asPath = resolve(target);
  if (existsSync(asPath) && statSync(asPath).isDirectory()) {
    if (isRunFolder(asPath)) return { runDir: asPath, experiment: readExperimentName(asPath) };
    if (existsSync(join(asPath, 'manifest.json')) && isRunFolder(resolve(asPath, '..'))) {
      const runDir = resolve(asPath, '..');
      return { runDir, experiment: readExperimentName(runDir) };
    }
    throw new LlmedError('checkpoint', 'not a run folder (needs spec.json, config.json and checkpoints/)', { where: asPath, hint: 'name a folder written by `llmed train` (runs/<experiment>/<timestamp>) or an experiment name' });
  }
  const { ws } = await loadContext();
  if (!(target in ws.experiments)) {
    throw new LlmedError('usage', `'${target}' is neither a run folder nor an experiment${didYouMean(target, Object.keys(ws.experiments))}`, { hint: `experiments: ${Object.keys(ws.experiments).join(', ')}` });
  }
  const runsDir = join(ws.root, 'runs', target);
  const stamps = existsSync(runsDir) ? readdirSync(runsDir).filter((d) => isRunFolder(join(runsDir, d)) && (existsSync(join(runsDir, d, 'checkpoints', 'best.json')) || existsSync(join(runsDir, d, 'checkpoints', 'last.json')))).sort() : [];
  if (stamps.length === 0) throw new LlmedError('checkpoint', `experiment '${target}' has no trained run yet`, { where: runsDir, hint: `train it first: llmed train ${target}` });
  return { runDir: join(runsDir, stamps[stamps.length - 1]), experiment: target };
}

function readExperimentName(runDir: string): string {
  try {
    return (JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')) as { name?: string }).name ?? 'run';
  } catch {
    return 'run';
  }
}
