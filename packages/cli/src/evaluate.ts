/**
 * `llmed evaluate <experiment|run>`: the experiment's test pairs through its exported model, natively
 * (onnxruntime-node + TypeScript warps and metrics): table.md/json like the papers' Table 1, a Dice box
 * plot per label, pictures and viewer folders for a few pairs, in <run>/eval. A run that was never
 * exported is exported first (the one step that needs Python).
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { isTextMetricRuntime, LlmedError, pluginOptions, readJsonFile, type ReportExperimentConfig } from '@llmed/core';
import { evaluateExport, evaluateReportExport, FieldPredictor, openExport, identityVerdict, tableMarkdown, type TextMetricPlugin } from '@llmed/runtime';
import { parseReport } from '@llmed/reports';
import { flagNumber, flagString, type ParsedArgs } from './args.ts';
import { loadContext } from './context.ts';
import { describeExport, exportRun } from './export.ts';
import { DEFAULT_METRICS, parseMetricList, resolveMetrics } from './metrics.ts';
import { preparedDir, reportPreparedDir } from '@llmed/data';
import { Progress } from './progress.ts';
import { resolveRun } from './runs.ts';

export interface EvaluateRunOptions { pairs?: number; pictures?: number; threads?: number; split?: 'test' | 'val' | 'train'; metrics?: string[]; out?: string }

/** The text metrics a report experiment names (config `evaluate.metrics`, or --metrics), default-filled. */
function textMetrics(registry: Awaited<ReturnType<typeof loadContext>>['registry'], ids: string[], where: string): TextMetricPlugin[] {
  return ids.map((id) => {
    const d = registry.get(id, 'Metric', where);
    if (!isTextMetricRuntime(d.runtime)) throw new LlmedError('config', `'${id}' is not a text metric (it scores registrations)`, { where });
    return { id, runtime: d.runtime, options: pluginOptions(d, {}, `${where} ${id}`) };
  });
}

/**
 * A report run: its export's generations on the prepared test samples, scored by text metrics per region,
 * with a page per sample (evaluateReportExport); the stand-in's fact parser describes each report.
 */
async function evaluateReportRun(runDir: string, opts: EvaluateRunOptions): Promise<{ out: string; markdown: string; verdict: string | null }> {
  const { ws, registry } = await loadContext();
  const config = readJsonFile(join(runDir, 'config.json')) as ReportExperimentConfig;
  const exportDir = join(runDir, 'export');
  if (!existsSync(join(exportDir, 'manifest.json'))) {
    console.error(`${relative(process.cwd(), runDir)} has no export yet: exporting it first (ONNX through the Python bridge)`);
    await exportRun(runDir, { threads: opts.threads });
  }
  const ids = opts.metrics ?? (config as { evaluate?: { metrics?: string[] } }).evaluate?.metrics ?? ['bleu', 'rouge-l'];
  const metrics = textMetrics(registry, ids, opts.metrics ? '--metrics' : `${join(runDir, 'config.json')} evaluate.metrics`);
  let progress: Progress | undefined;
  const r = await evaluateReportExport({
    exportDir, preparedDir: reportPreparedDir(ws, config.name, config), out: opts.out ?? join(runDir, 'eval'), split: opts.split ?? 'test',
    limit: opts.pairs, threads: opts.threads, metrics, workspaceRoot: ws.root,
    describe: config.data.source === 'standin' ? (text) => parseReport(text).facts.map((f) => JSON.stringify(f)) : undefined,
    onProgress: (done, total, id) => (progress ??= new Progress('generating', total)).update(done, id),
  });
  progress?.done();
  return { out: r.out, markdown: r.markdown, verdict: null };
}

export async function evaluateRun(runDir: string, opts: EvaluateRunOptions = {}): Promise<{ out: string; markdown: string; verdict: string | null }> {
  if ((readJsonFile(join(runDir, 'spec.json')) as { task?: string }).task === 'report') return evaluateReportRun(runDir, opts);
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
  const shown = relative(process.cwd(), r.out) || r.out;
  // A report evaluation writes samples.json and a page per sample instead of pairs.
  if (existsSync(join(r.out, 'samples.json'))) console.log(`written: ${shown} (table.md, table.json, samples.json, samples/<id>.md|.png|.nii.gz); view the CTs beside the texts with: llmed view ${shown}`);
  else console.log(`written: ${shown} (table.md, table.json, dice_per_label.png, pictures/, pairs/ for llmed view)`);
  return 0;
}
