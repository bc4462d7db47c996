/**
 * `llmed data prepare <report experiment>`: a report dataset → the prepared folder the report trainer reads
 * (docs/report-generation.md): every scan preprocessed once by the experiment's pipeline (@llmed/reports'
 * `prepareCT`, the same code `llmed report` runs on a new scan), and `samples.json` with one entry per
 * (scan, non-empty region) report and per multiple-choice question.
 *
 * `data.source` says which loader reads `data.root`: `standin` (the real-anatomy stand-in; generated here
 * by `generateReportProxy` when the folder is missing, since it is deterministic and needs only
 * ../shared/data) or `amos-mm` (an AMOS-MM 2024 JSON; `data.manifest` names it, default dataset.json).
 * The folder is built under a staging name and published (never deleted before its replacement is in
 * place); an unchanged source with unchanged settings is not prepared again.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { acquireWriteLock, dataError, publishFolder, recoverFolder, stagingFolder, writeFileAtomic, type ReportExperimentConfig, type Workspace } from '@llmed/core';
import { ctPipelineOf, generateReportProxy, prepareCT, readAmosMM, readReportProxy, type AmosDataset } from '@llmed/reports';

export const REPORT_SAMPLES_VERSION = 1;

export interface PreparedReportSample {
  id: string;
  scanId: string;
  /** Prepared volume header, relative to the prepared folder. */
  image: string;
  region?: string;
  kind: 'report' | 'vqa';
  prompt: string;
  answer: string;
  options?: Record<string, string>;
  split: 'train' | 'val' | 'test';
  /** Stand-in only: the facts the report was written from (for fact-f1). */
  facts?: unknown[];
}

export interface PreparedReports {
  dir: string;
  skipped: boolean;
  samples: PreparedReportSample[];
  counts: Record<string, number>;
  statement?: string;
}

function rootOf(ws: Workspace, p: string): string { return isAbsolute(p) ? p : resolve(ws.root, p); }

export function reportPreparedDir(ws: Workspace, name: string, cfg: ReportExperimentConfig): string {
  return cfg.data.prepared ? rootOf(ws, cfg.data.prepared) : join(ws.root, '.cache', 'prepared', name);
}

/** Read the experiment's dataset (generating the stand-in if it is missing). */
async function readDataset(ws: Workspace, cfg: ReportExperimentConfig, log: (m: string) => void): Promise<{ data: AmosDataset; facts?: Record<string, Record<string, unknown[]>>; statement?: string; sourceHash: string }> {
  const root = rootOf(ws, cfg.data.root);
  if (cfg.data.source === 'standin') {
    if (!existsSync(join(root, 'manifest.json'))) {
      log(`generating the report stand-in into ${relative(process.cwd(), root) || root} (deterministic; templated findings from segmentations of real scans)`);
      await generateReportProxy({ out: root });
    }
    const proxy = readReportProxy(root);
    return { data: proxy, facts: proxy.facts as Record<string, Record<string, unknown[]>>, statement: proxy.manifest.statement, sourceHash: proxy.manifest.hash };
  }
  if (cfg.data.source === 'amos-mm') {
    const file = join(root, cfg.data.manifest ?? 'dataset.json');
    if (!existsSync(file)) throw dataError(file, `the AMOS-MM dataset file is missing. ${cfg.data.howToGet}`);
    const data = readAmosMM(file, { regions: cfg.data.regions });
    return { data, sourceHash: createHash('sha256').update(readFileSync(file)).digest('hex') };
  }
  throw dataError('data.source', `'${cfg.data.source}' is not a report dataset llmed reads ('standin' or 'amos-mm')`);
}

/** Prepare the samples of a report experiment; returns what is in the prepared folder. */
export async function prepareReportExperiment(ws: Workspace, name: string, cfg: ReportExperimentConfig, opts: { force?: boolean; log?: (m: string) => void; onProgress?: (done: number, total: number, what: string) => void } = {}): Promise<PreparedReports> {
  const log = opts.log ?? (() => {});
  const dir = reportPreparedDir(ws, name, cfg);
  const release = acquireWriteLock(dir);
  try {
    recoverFolder(dir);
    const { data, facts, statement, sourceHash } = await readDataset(ws, cfg, log);
    const pipeline = ctPipelineOf(cfg.data.preprocess, `${name} data.preprocess`);
    const key = createHash('sha256').update(JSON.stringify({ v: REPORT_SAMPLES_VERSION, sourceHash, pipeline, kinds: cfg.data.kinds, regions: cfg.data.regions ?? null })).digest('hex');
    const doneFile = join(dir, 'prepared.json');
    if (!opts.force && existsSync(doneFile) && (JSON.parse(readFileSync(doneFile, 'utf8')) as { key?: string }).key === key) {
      const samples = JSON.parse(readFileSync(join(dir, 'samples.json'), 'utf8')) as { samples: PreparedReportSample[] };
      return { dir, skipped: true, samples: samples.samples, counts: countSplits(samples.samples), statement };
    }
    const staging = stagingFolder(dir);
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(join(staging, 'volumes'), { recursive: true });
    try {
      const images = new Map<string, string>();
      const scans = [...new Set([...data.reports.map((r) => r.image), ...data.vqa.map((q) => q.image)])];
      for (const [n, file] of scans.entries()) {
        const p = await prepareCT(file, pipeline, join(staging, 'volumes'));
        images.set(file, `volumes/${p.name}.json`);
        opts.onProgress?.(n + 1, scans.length, relative(rootOf(ws, cfg.data.root), file));
      }
      const samples: PreparedReportSample[] = [];
      if (cfg.data.kinds.includes('report')) {
        for (const r of data.reports) {
          samples.push({ id: `${r.scanId}-${r.region}`, scanId: r.scanId, image: images.get(r.image)!, region: r.region, kind: 'report', prompt: r.prompt, answer: r.answer, split: r.split,
            ...(facts ? { facts: facts[r.scanId]?.[r.region] ?? [] } : {}) });
        }
      }
      if (cfg.data.kinds.includes('vqa')) {
        const perScan = new Map<string, number>();
        for (const q of data.vqa) {
          const n = perScan.get(q.scanId) ?? 0;
          perScan.set(q.scanId, n + 1);
          samples.push({ id: `${q.scanId}-q${n}`, scanId: q.scanId, image: images.get(q.image)!, kind: 'vqa', prompt: q.prompt, answer: q.answer, options: q.options, split: q.split });
        }
      }
      if (samples.length === 0) throw dataError(rootOf(ws, cfg.data.root), `no ${cfg.data.kinds.join(' or ')} samples in the dataset`);
      await writeFileAtomic(join(staging, 'samples.json'), `${JSON.stringify({ version: REPORT_SAMPLES_VERSION, statement, samples }, null, 1)}\n`);
      await writeFileAtomic(join(staging, 'prepared.json'), `${JSON.stringify({ key, experiment: name, source: cfg.data.source, sourceHash, pipeline, statement, counts: countSplits(samples) }, null, 1)}\n`);
      publishFolder(staging, dir);
      return { dir, skipped: false, samples, counts: countSplits(samples), statement };
    } catch (e) {
      rmSync(staging, { recursive: true, force: true });
      throw e;
    }
  } finally {
    release();
  }
}

function countSplits(samples: readonly PreparedReportSample[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const s of samples) counts[`${s.kind}:${s.split}`] = (counts[`${s.kind}:${s.split}`] ?? 0) + 1;
  return counts;
}
