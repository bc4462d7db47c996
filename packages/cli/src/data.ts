/** `llmed data inspect <file>` and `llmed data prepare <experiment>`. */
import { relative } from 'node:path';
import { LlmedError, type ReportExperimentConfig, type Workspace } from '@llmed/core';
import { formatInspect, inspectVolume } from '@llmed/imaging';
import type { ParsedArgs } from './args.ts';
import { loadAnyExperiment, loadContext, loadExperiment } from './context.ts';
import { prepareExperiment, prepareReportExperiment } from '@llmed/data';
import { Progress } from './progress.ts';

export async function dataInspect(args: ParsedArgs): Promise<number> {
  const file = args.positionals[0];
  if (!file) throw new LlmedError('usage', 'data inspect needs a NIfTI file', { hint: 'llmed data inspect /usr/share/mricron/templates/ch2.nii.gz' });
  const info = await inspectVolume(file);
  if (args.flags.json) process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
  else console.log(formatInspect(info));
  return 0;
}

export async function dataPrepare(args: ParsedArgs): Promise<number> {
  const target = args.positionals[0];
  if (!target) throw new LlmedError('usage', 'data prepare needs an experiment', { hint: 'llmed data prepare demo' });
  const { ws } = await loadContext();
  const any = await loadAnyExperiment(target);
  if (any.task === 'report') await runReportPrepare(ws, any.name, any.config, Boolean(args.flags.force));
  else await runPrepare(ws.root, any.name, (await loadExperiment(target)).config, Boolean(args.flags.force));
  return 0;
}

/** Prepare a report experiment's samples with a progress bar and a one-line summary (`data prepare`, `train`, `demo`). */
export async function runReportPrepare(ws: Workspace, name: string, config: ReportExperimentConfig, force = false) {
  let bar: Progress | undefined;
  const r = await prepareReportExperiment(ws, name, config, {
    force,
    log: (m) => console.error(m),
    onProgress: (done, total, what) => {
      bar ??= new Progress(`preparing ${name}`, total);
      bar.update(done, what);
    },
  });
  bar?.done();
  const rel = relative(process.cwd(), r.dir) || r.dir;
  console.log(`${r.skipped ? 'prepared data up to date' : 'prepared'}: ${rel} — ${config.data.title}; ${r.samples} samples from ${r.images} images`);
  return r;
}

/** Prepare with a progress bar and a one-line summary; shared by `data prepare`, `train` and `demo`. */
export async function runPrepare(root: string, name: string, config: Parameters<typeof prepareExperiment>[2], force = false) {
  const { ws } = await loadContext();
  let bar: Progress | undefined;
  const r = await prepareExperiment(ws, name, config, {
    force,
    log: (m) => console.error(m),
    onProgress: (done, total, what) => {
      bar ??= new Progress(`preparing ${name}`, total);
      bar.update(done, what);
    },
  });
  bar?.done();
  const p = r.pairs;
  const rel = relative(process.cwd(), r.dir) || r.dir;
  console.log(`${r.skipped ? 'prepared data up to date' : 'prepared'}: ${rel} — ${p.title}; ${p.scans} scans at ${p.shape.join('×')}, pairs train ${p.train.length} / val ${p.val.length} / test ${p.test.length}, ${p.labels.length} labels`);
  void root;
  return r;
}
