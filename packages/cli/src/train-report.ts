/**
 * `llmed train <report experiment>`: check everything the run needs on disk (the LLM checkpoint folder with
 * its tokenizer, encoder weights, the prepared samples), then train through the same bridge as
 * registration with the report trainer (bridge/python/llmed/report.py), showing loss, stage and ETA, and
 * print a generated report beside its reference at the end.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { checkSpecPlugins, LlmedError, readJsonFile, withWriteLock, type ReportExperimentConfig, type ReportModelSpec } from '@llmed/core';
import type { TrainStatus } from '@llmed/bridge';
import type { Loaded, ReportExperiment } from './context.ts';
import { formatSeconds, Progress } from './progress.ts';
import { runReportPrepare } from './data.ts';
import { canPrepareReports, reportPreparedDir as preparedReportDir } from '@llmed/data';
import { failedRun, timestamp, type TrainOptions } from './train.ts';

export const REPORT_TRAINER = 'llmed.report:ReportTrainer';

/** The prepared folder a report experiment trains from: data.prepared, else .cache/prepared/<name>. */
export function reportPreparedDir(_root: string, ex: ReportExperiment & Pick<Loaded, 'ws'>): string {
  return preparedReportDir(ex.ws, ex.name, ex.config);
}

/** Every missing thing at once, each saying what to put where; nothing starts while one is missing. */
export function checkReportRequirements(ex: Loaded & ReportExperiment): void {
  const ctx = { workspaceRoot: ex.ws.root };
  const problems: string[] = [];
  for (const node of [ex.spec.encoder, ex.spec.projector, ...ex.spec.losses]) {
    const msg = ex.registry.get(node.id).missing?.(node.options, ctx);
    if (msg) problems.push(`${node.path} (${node.id}): ${msg}`);
  }
  const llm = ex.registry.get(ex.spec.llm.id).causalLM?.missing(ex.spec.llm.options as never, ctx);
  if (llm) problems.push(`model.llm (${ex.spec.llm.id}): ${llm}`);
  const prepared = reportPreparedDir(ex.ws.root, ex);
  if (!existsSync(join(prepared, 'samples.json'))) {
    problems.push(`data: ${ex.config.data.title} is not prepared: ${join(prepared, 'samples.json')} is missing. ${ex.config.data.howToGet}`);
  }
  if (problems.length) {
    const list = problems.map((p, i) => `\n  ${i + 1}. ${p}`).join('');
    throw new LlmedError('data', `cannot train '${ex.name}': ${problems.length === 1 ? 'one thing is' : `${problems.length} things are`} missing:${list}`,
      { where: relative(process.cwd(), ex.configFile) || ex.configFile, exitCode: 4 });
  }
}

export async function trainReportExperiment(ex: Loaded & ReportExperiment, opts: TrainOptions): Promise<string> {
  if (opts.launch) throw new LlmedError('usage', 'report experiments train in one process for now (no --nproc-per-node)');
  if (opts.device && !['auto', 'cpu', 'cuda'].includes(opts.device)) throw new LlmedError('usage', `--device must be auto, cpu or cuda, not '${opts.device}'`);
  let config: ReportExperimentConfig = structuredClone(ex.config);
  let spec: ReportModelSpec = ex.spec;
  if (opts.resume) {
    const runDir = resolve(opts.resume);
    const specFile = join(runDir, 'spec.json');
    if (!existsSync(specFile) || !existsSync(join(runDir, 'config.json'))) {
      throw new LlmedError('checkpoint', 'cannot resume: not a run folder (needs spec.json, config.json and checkpoints/)', { where: runDir });
    }
    spec = readJsonFile(specFile) as ReportModelSpec;
    checkSpecPlugins(spec, ex.registry, specFile);
    config = readJsonFile(join(runDir, 'config.json')) as ReportExperimentConfig;
  }
  // The dataset (or the stand-in llmed generates) is prepared first, as for registration: once; a fingerprint skips it later.
  if (!opts.resume && canPrepareReports(ex.ws, ex.config)) await runReportPrepare(ex.ws, ex.name, ex.config);
  checkReportRequirements(ex);
  if (opts.batchSize && !opts.resume) config.train.batchSize = opts.batchSize;
  if (opts.iterations && !opts.resume) {
    // --iterations: the stages keep their proportions (a quick run of the same schedule)
    const total = config.train.stages.reduce((a, s) => a + s.steps, 0);
    config.train.stages = config.train.stages.map((s) => ({ ...s, steps: Math.max(1, Math.round((s.steps * opts.iterations!) / total)) }));
  }
  let bridge: typeof import('@llmed/bridge');
  try {
    bridge = await import('@llmed/bridge');
  } catch (e) {
    throw new LlmedError('not-built', `the Python bridge is not available: ${(e as Error).message}`, { exitCode: 3 });
  }
  const runDir = resolve(opts.resume ?? opts.runDir ?? join(ex.ws.root, 'runs', ex.name, timestamp()));
  return withWriteLock(runDir, async () => {
    const createdRunDir = !existsSync(runDir);
    mkdirSync(runDir, { recursive: true });
    const total = config.train.stages.reduce((a, s) => a + s.steps, 0);
    const bar = new Progress(`training ${ex.name}`, total);
    const result = await bridge.trainRun({
      workspaceRoot: ex.ws.root,
      experiment: ex.name,
      configFile: ex.configFile,
      config,
      spec,
      plugins: ex.registry.pythonEntries(),
      preparedDir: reportPreparedDir(ex.ws.root, ex),
      runDir,
      resume: Boolean(opts.resume),
      device: opts.device ?? 'auto',
      trainerOptions: { trainer: REPORT_TRAINER, ...(opts.threads ? { threads: opts.threads } : {}) },
      onProgress: (s: TrainStatus) => {
        const st = s as TrainStatus & { stage?: string; val_loss?: number | null };
        const detail = [s.loss != null ? `loss ${s.loss.toFixed(4)}` : '', st.val_loss != null ? `val loss ${st.val_loss.toFixed(4)}` : '',
          st.stage ? `stage ${st.stage} (${s.phase}/${s.phases})` : ''].filter(Boolean).join('  ');
        bar.update(s.step, detail);
      },
    }).catch((e: unknown) => {
      throw failedRun(e, { runDir, createdRunDir, configFile: ex.configFile });
    });
    bar.done();
    console.log(`training ${result.state} at step ${result.step}/${result.total} after ${formatSeconds(result.elapsed_s)}${result.best ? `; best validation loss ${result.best.value.toFixed(4)} at step ${result.best.step}` : ''}${result.message ? ` — ${result.message}` : ''}`);
    for (const s of doneSamples(runDir)) {
      console.log(`\n${s.id}${s.region ? ` (${s.region})` : ''}\n  reference: ${s.reference}\n  generated: ${s.generated}${s.stopped ? '' : ' […max new tokens]'}`);
    }
    if (result.interrupted) {
      const rel = relative(process.cwd(), runDir) || runDir;
      throw new LlmedError('cancelled', `training was interrupted at step ${result.step}/${result.total}; checkpoints/last is saved`, { where: rel, hint: `continue it with: llmed train ${ex.name} --resume ${rel}`, exitCode: 130 });
    }
    return runDir;
  });
}

interface GeneratedSample { id: string; region?: string; reference: string; generated: string; stopped: boolean }

/** The generated samples of the run's last `done` event in log.jsonl. */
function doneSamples(runDir: string): GeneratedSample[] {
  const log = join(runDir, 'log.jsonl');
  if (!existsSync(log)) return [];
  const done = readFileSync(log, 'utf8').trim().split('\n').map((l) => { try { return JSON.parse(l); } catch { return null; } })
    .filter((e) => e?.event === 'done').at(-1);
  return Array.isArray(done?.samples) ? done.samples : [];
}
