/**
 * `llmed evaluate <experiment|run>`: the experiment's test pairs through its exported model, natively
 * (onnxruntime-node + TypeScript warps and metrics): table.md/json like the papers' Table 1, a Dice box
 * plot per label, pictures and viewer folders for a few pairs, in <run>/eval. A run that was never
 * exported is exported first (the one step that needs Python).
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { LlmedError } from '@llmed/core';
import { evaluateExport, FieldPredictor, openExport, identityVerdict, tableMarkdown } from '@llmed/runtime';
import { flagNumber, flagString, type ParsedArgs } from './args.ts';
import { loadContext } from './context.ts';
import { describeExport, exportRun } from './export.ts';
import { DEFAULT_METRICS, parseMetricList, resolveMetrics } from './metrics.ts';
import { preparedDir } from '@llmed/data';
import { Progress } from './progress.ts';
import { resolveRun } from './runs.ts';

export interface EvaluateRunOptions { pairs?: number; pictures?: number; threads?: number; split?: 'test' | 'val' | 'train'; metrics?: string[]; out?: string }

export async function evaluateRun(runDir: string, opts: EvaluateRunOptions = {}): Promise<{ out: string; markdown: string; verdict: string | null }> {
  const { ws, registry } = await loadContext();
  const exportDir = join(runDir, 'export');
  if (!existsSync(join(exportDir, 'manifest.json'))) {
    console.error(`${relative(process.cwd(), runDir)} has no export yet: exporting it first (ONNX through the Python bridge)`);
    const r = await exportRun(runDir, { threads: opts.threads });
    for (const line of describeExport(r)) console.error(line);
  }
  const exported = await openExport(exportDir);
  const m = exported.manifest;
  const ids = opts.metrics ?? m.evaluate?.metrics ?? DEFAULT_METRICS;
  const metrics = resolveMetrics(registry, ids, opts.metrics ? '--metrics' : `${exported.manifestFile} evaluate.metrics`);
  const prepared = m.source.preparedDir && existsSync(join(m.source.preparedDir, 'pairs.json')) ? m.source.preparedDir : preparedDir(ws.root, m.experiment);
  if (!existsSync(join(prepared, 'pairs.json'))) {
    throw new LlmedError('data', `the prepared dataset of '${m.experiment}' is not there`, { where: prepared, hint: `run \`llmed data prepare ${m.experiment}\`` });
  }
  const predictor = await FieldPredictor.load(exported, { threads: opts.threads });
  let progress: Progress | undefined;
  try {
    const { out, table } = await evaluateExport({
      predictor, preparedDir: prepared, split: opts.split ?? 'test', maxPairs: opts.pairs ?? m.evaluate?.pairs, out: opts.out ?? join(runDir, 'eval'), metrics,
      pictures: opts.pictures ?? 3, method: `${m.method ?? 'model'} (${m.experiment}, step ${m.source.step})`,
      onProgress: (done, total, what) => (progress ??= new Progress('evaluating', total)).update(done, what),
    });
    progress?.done();
    return { out, markdown: tableMarkdown(table), verdict: identityVerdict(table) };
  } finally {
    await predictor.close();
  }
}

export async function evaluateCommand(args: ParsedArgs): Promise<number> {
  const target = args.positionals[0];
  if (!target) throw new LlmedError('usage', 'evaluate needs an experiment or a run folder', { hint: 'llmed evaluate demo' });
  const split = flagString(args, 'split') as EvaluateRunOptions['split'] | undefined;
  if (split && !['test', 'val', 'train'].includes(split)) throw new LlmedError('usage', `--split must be test, val or train, not '${split}'`);
  const { runDir } = await resolveRun(target);
  const r = await evaluateRun(runDir, {
    pairs: flagNumber(args, 'pairs'), pictures: flagNumber(args, 'pictures'), threads: flagNumber(args, 'threads'), split,
    metrics: parseMetricList(flagString(args, 'metrics')), out: flagString(args, 'out'),
  });
  console.log(r.markdown);
  console.log(`written: ${relative(process.cwd(), r.out) || r.out} (table.md, table.json, dice_per_label.png, pictures/, pairs/ for llmed view)`);
  return 0;
}
