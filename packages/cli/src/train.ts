/** `llmed train <experiment>`: prepare data, check what the model needs on disk, train through the bridge. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { LlmedError, type ModelSpec, type SpecNode } from '@llmed/core';
import { flagNumber, flagString, type ParsedArgs } from './args.ts';
import { loadExperiment, type Experiment, type Loaded } from './context.ts';
import { runPrepare } from './data.ts';
import { formatSeconds, Progress } from './progress.ts';

/** Every node's `missing` check; the first problem stops training before Python starts. */
export function checkRequirements(ex: Loaded & Experiment): void {
  const nodes: SpecNode[] = [ex.spec.encoder, ex.spec.tokens, ...ex.spec.block, ex.spec.stageAdapters, ex.spec.decoder, ...ex.spec.losses];
  for (const node of nodes) {
    if (node.sharesWith) continue;
    const d = ex.registry.get(node.id);
    const msg = d.missing?.(node.options, { workspaceRoot: ex.ws.root });
    if (msg) throw new LlmedError('checkpoint', msg, { where: `${relative(process.cwd(), ex.configFile)} ${node.path}.with.checkpoint`, exitCode: 4 });
  }
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..+/, '').replace('T', '-');
}

export async function train(args: ParsedArgs): Promise<number> {
  const target = args.positionals[0];
  if (!target) throw new LlmedError('usage', 'train needs an experiment', { hint: 'llmed train demo' });
  const ex = await loadExperiment(target);
  const runDir = await trainExperiment(ex, {
    device: flagString(args, 'device') as 'auto' | 'cpu' | 'cuda' | undefined,
    resume: flagString(args, 'resume'),
    iterations: flagNumber(args, 'iterations'),
    runDir: flagString(args, 'run-dir'),
  });
  console.log(`run folder: ${relative(process.cwd(), runDir) || runDir}`);
  return 0;
}

export interface TrainOptions { device?: 'auto' | 'cpu' | 'cuda'; resume?: string; iterations?: number; runDir?: string }

export async function trainExperiment(ex: Loaded & Experiment, opts: TrainOptions): Promise<string> {
  if (opts.device && !['auto', 'cpu', 'cuda'].includes(opts.device)) throw new LlmedError('usage', `--device must be auto, cpu or cuda, not '${opts.device}'`);
  checkRequirements(ex);
  const prepared = await runPrepare(ex.ws.root, ex.name, ex.config);
  const config = structuredClone(ex.config);
  if (opts.iterations) config.train.iterations = opts.iterations;
  const runDir = opts.resume ?? opts.runDir ?? join(ex.ws.root, 'runs', ex.name, timestamp());
  mkdirSync(runDir, { recursive: true });
  if (!opts.resume) {
    writeFileSync(join(runDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    writeFileSync(join(runDir, 'spec.json'), `${JSON.stringify(ex.spec satisfies ModelSpec, null, 2)}\n`);
  }
  let bridge: typeof import('@llmed/bridge');
  try {
    bridge = await import('@llmed/bridge');
  } catch (e) {
    throw new LlmedError('not-built', `the Python bridge is not available: ${(e as Error).message}`, { exitCode: 3 });
  }
  const bar = new Progress(`training ${ex.name}`, config.train.iterations);
  const result = await bridge.trainRun({
    workspaceRoot: ex.ws.root,
    experiment: ex.name,
    configFile: ex.configFile,
    config,
    spec: ex.spec,
    preparedDir: prepared.dir,
    runDir,
    resume: Boolean(opts.resume),
    device: opts.device ?? 'auto',
    onProgress: (s: { step: number; total?: number; loss?: number; val_dice?: number | null; phase?: number }) => {
      const detail = [s.loss !== undefined ? `loss ${s.loss.toFixed(4)}` : '', s.val_dice != null ? `val Dice ${s.val_dice.toFixed(3)}` : '', s.phase ? `step ${s.phase}` : ''].filter(Boolean).join('  ');
      bar.update(s.step, detail);
    },
  });
  bar.done();
  const r = result as { status?: string; step?: number; elapsed_s?: number; best?: unknown; message?: string };
  console.log(`training ${r.status ?? 'finished'} at step ${r.step ?? '?'}${r.elapsed_s ? ` after ${formatSeconds(r.elapsed_s)}` : ''}${r.message ? ` — ${r.message}` : ''}`);
  return runDir;
}
