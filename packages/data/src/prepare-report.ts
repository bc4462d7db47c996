/**
 * Data preparation of a report experiment: an AMOS-MM-layout dataset (the challenge's JSON, or the
 * report-proxy stand-in that `llmed data generate report-proxy` writes) → the folder the report trainer
 * reads (docs/report-generation.md): every CT preprocessed once by @llmed/reports' `prepareCT` (M3D's or
 * Merlin's pipeline, in the model's axis order — the same mapping `llmed report` uses on a new scan,
 * `ctPipelineOf`) and `samples.json`: one report sample per scan and non-empty region, one VQA sample per
 * question.
 *
 * `data.source: "report-proxy"` is the stand-in: when its folder is missing it is generated here (it is
 * deterministic and needs only ../shared/data). The folder is built under a staging name, holding the
 * target's write lock, and published without deleting the old one first; a fingerprint of the data config
 * and of the dataset JSON skips work already done.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { acquireWriteLock, LlmedError, publishFolder, recoverFolder, stagingFolder, writeFileAtomic, type ReportExperimentConfig, type Workspace } from '@llmed/core';
import { ctPipelineOf, generateReportProxy, prepareCT, readAmosMM } from '@llmed/reports';

export const REPORT_SAMPLES_VERSION = 1;

export interface PreparedReportSample {
  id: string;
  scanId: string;
  /** Prepared volume header, relative to the prepared folder. */
  image: string;
  region: string;
  kind: 'report' | 'vqa';
  prompt: string;
  answer: string;
  options?: Record<string, string>;
  split: 'train' | 'val' | 'test';
}

export interface PreparedReports { dir: string; samples: number; images: number; skipped: boolean; counts: Record<string, number> }

const fromRoot = (ws: Workspace, p: string) => (isAbsolute(p) ? p : resolve(ws.root, p));

/** The prepared folder a report experiment trains from: data.prepared, else .cache/prepared/<name>. */
export function reportPreparedDir(ws: Workspace, name: string, cfg: ReportExperimentConfig): string {
  return cfg.data.prepared ? fromRoot(ws, cfg.data.prepared) : join(ws.root, '.cache', 'prepared', name);
}

/** The dataset folder (data.root; under `$LLMED_DATA` when set, by its last name) and its JSON (data.manifest). */
export function reportDatasetFile(ws: Workspace, cfg: ReportExperimentConfig): string {
  const env = process.env.LLMED_DATA;
  const base = env ? resolve(env, cfg.data.root.split('/').pop()!) : fromRoot(ws, cfg.data.root);
  return join(base, cfg.data.manifest ?? 'dataset.json');
}

/** Whether `prepareReportExperiment` can run: the dataset JSON is there, or it is the stand-in llmed generates. */
export function canPrepareReports(ws: Workspace, cfg: ReportExperimentConfig): boolean {
  // 'prepared': the prepared folder is the dataset (written by someone else): never prepared over
  if (cfg.data.source === 'prepared') return false;
  return cfg.data.source === 'report-proxy' || existsSync(reportDatasetFile(ws, cfg));
}

export async function prepareReportExperiment(ws: Workspace, name: string, cfg: ReportExperimentConfig, opts: { force?: boolean; log?: (m: string) => void; onProgress?: (done: number, total: number, what: string) => void } = {}): Promise<PreparedReports> {
  const file = reportDatasetFile(ws, cfg);
  if (!existsSync(file) && cfg.data.source === 'report-proxy') {
    opts.log?.(`generating the report stand-in into ${resolve(file, '..')} (deterministic; templated findings from segmentations of real scans)`);
    await generateReportProxy({ out: resolve(file, '..') });
  }
  if (!existsSync(file)) throw new LlmedError('data', `${cfg.data.title}: the dataset JSON is not there`, { where: file, hint: cfg.data.howToGet, exitCode: 4 });
  const dir = reportPreparedDir(ws, name, cfg);
  const release = acquireWriteLock(dir);
  try {
    recoverFolder(dir);
    const fingerprint = createHash('sha256').update(JSON.stringify({ data: cfg.data, sha: createHash('sha256').update(readFileSync(file)).digest('hex'), v: REPORT_SAMPLES_VERSION })).digest('hex').slice(0, 16);
    const samplesFile = join(dir, 'samples.json');
    if (!opts.force && existsSync(samplesFile)) {
      try {
        const prior = JSON.parse(readFileSync(samplesFile, 'utf8')) as { fingerprint?: string; samples: PreparedReportSample[]; images?: number };
        if (prior.fingerprint === fingerprint) return { dir, samples: prior.samples.length, images: prior.images ?? 0, skipped: true, counts: countSplits(prior.samples) };
      } catch { /* prepared again below */ }
    }
    const ds = readAmosMM(file, { regions: cfg.data.regions });
    const kinds = new Set(cfg.data.kinds);
    const pipeline = ctPipelineOf(cfg.data.preprocess, `${name} data.preprocess`);
    const staging = stagingFolder(dir);
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(join(staging, 'volumes'), { recursive: true });
    try {
      const images = [...new Set([...(kinds.has('report') ? ds.reports.map((r) => r.image) : []), ...(kinds.has('vqa') ? ds.vqa.map((q) => q.image) : [])])];
      const names = new Map<string, string>();
      for (const [n, image] of images.entries()) {
        const p = await prepareCT(image, pipeline, join(staging, 'volumes'));
        names.set(image, p.name);
        opts.onProgress?.(n + 1, images.length, p.name);
      }
      const samples: PreparedReportSample[] = [];
      if (kinds.has('report')) {
        for (const r of ds.reports) {
          if (!r.answer.trim()) continue; // one report sample per scan and non-empty region
          samples.push({ id: `${r.scanId}-${r.region}`, scanId: r.scanId, image: `volumes/${names.get(r.image)}.json`, region: r.region, kind: 'report', prompt: r.prompt, answer: r.answer, split: r.split });
        }
      }
      if (kinds.has('vqa')) {
        const count = new Map<string, number>();
        for (const q of ds.vqa) {
          const n = count.get(q.scanId) ?? 0;
          count.set(q.scanId, n + 1);
          samples.push({ id: `${q.scanId}-q${n}`, scanId: q.scanId, image: `volumes/${names.get(q.image)}.json`, region: q.type ?? '', kind: 'vqa', prompt: q.prompt, answer: q.answer, options: q.options, split: q.split });
        }
      }
      if (samples.length === 0) throw new LlmedError('data', `no ${[...kinds].join(' or ')} samples in the dataset`, { where: file });
      await writeFileAtomic(join(staging, 'samples.json'), `${JSON.stringify({ fingerprint, source: file, title: cfg.data.title, pipeline, images: images.length, samples }, null, 1)}\n`);
      publishFolder(staging, dir);
      return { dir, samples: samples.length, images: images.length, skipped: false, counts: countSplits(samples) };
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
