/**
 * Data preparation of a report experiment: an AMOS-MM-layout dataset (the challenge's JSON, or the
 * report-proxy stand-in that `llmed data generate report-proxy` writes) → the folder the report trainer
 * reads: every CT preprocessed once by @llmed/reports' `prepareCT` (M3D's or Merlin's pipeline, in the
 * model's axis order) and `samples.json` — one report sample per scan and non-empty region, one VQA sample
 * per question (docs/report-generation.md). Built under a temporary name and renamed into place; a
 * fingerprint of the data config and the dataset JSON skips work already done.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { LlmedError, type ReportExperimentConfig } from '@llmed/core';
import { prepareCT, readAmosMM, type CtPipeline } from '@llmed/reports';
import type { ReportExperiment } from './context.ts';
import { Progress } from './progress.ts';

export interface PreparedReportData { dir: string; samples: number; images: number; skipped: boolean }

/** The dataset JSON of a report experiment: data.root/data.manifest (default dataset.json), `$LLMED_DATA` aware. */
export function reportDatasetFile(root: string, cfg: ReportExperimentConfig): string {
  const env = process.env.LLMED_DATA;
  const base = env ? resolve(env, cfg.data.root.split('/').pop()!) : isAbsolute(cfg.data.root) ? cfg.data.root : resolve(root, cfg.data.root);
  return join(base, cfg.data.manifest ?? 'dataset.json');
}

/** M3D's and Merlin's pipelines sized by data.preprocess.shape (NIfTI order i, j, k). */
export function ctPipeline(cfg: ReportExperimentConfig): CtPipeline {
  const [i, j, k] = cfg.data.preprocess.shape;
  const name = cfg.data.preprocess.pipeline;
  // M3D's tensor is (D, H, W) = (Z, X, Y) of the file; Merlin's is (X, Y, Z) after RAS.
  if (name === 'm3d') return { name: 'm3d', options: { shape: [k, i, j] } };
  if (name === 'merlin') return { name: 'merlin', options: { shape: [i, j, k], ...(cfg.data.preprocess.spacing ? { spacing: cfg.data.preprocess.spacing } : {}) } };
  throw new LlmedError('config', `data.preprocess.pipeline '${name}' is not one of m3d, merlin`, { where: 'data.preprocess.pipeline' });
}

export async function prepareReportData(root: string, ex: ReportExperiment, outDir: string, force = false): Promise<PreparedReportData> {
  const cfg = ex.config;
  const file = reportDatasetFile(root, cfg);
  if (!existsSync(file)) {
    throw new LlmedError('data', `${cfg.data.title}: the dataset JSON is not there`, { where: file, hint: cfg.data.howToGet, exitCode: 4 });
  }
  const fingerprint = createHash('sha256').update(JSON.stringify({ data: cfg.data, sha: createHash('sha256').update(readFileSync(file)).digest('hex'), v: 1 })).digest('hex').slice(0, 16);
  const samplesFile = join(outDir, 'samples.json');
  if (!force && existsSync(samplesFile)) {
    try {
      const prior = JSON.parse(readFileSync(samplesFile, 'utf8'));
      if (prior.fingerprint === fingerprint) return { dir: outDir, samples: prior.samples.length, images: prior.images ?? 0, skipped: true };
    } catch { /* rebuilt below */ }
  }
  const ds = readAmosMM(file, { regions: cfg.data.regions });
  const kinds = new Set(cfg.data.kinds);
  const pipeline = ctPipeline(cfg);
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'volumes'), { recursive: true });
  try {
    const images = [...new Set([...(kinds.has('report') ? ds.reports.map((r) => r.image) : []), ...(kinds.has('vqa') ? ds.vqa.map((q) => q.image) : [])])];
    const names = new Map<string, string>();
    const bar = new Progress(`preparing ${ex.name}`, images.length);
    for (const [n, image] of images.entries()) {
      const p = await prepareCT(image, pipeline, join(tmp, 'volumes'));
      names.set(image, p.name);
      bar.update(n + 1, p.name);
    }
    bar.done();
    const samples: Record<string, unknown>[] = [];
    if (kinds.has('report')) {
      for (const r of ds.reports) {
        if (!r.answer.trim()) continue; // one report sample per scan and non-empty region
        samples.push({ id: `${r.scanId}-${r.region}`, image: `volumes/${names.get(r.image)}.json`, region: r.region, kind: 'report', prompt: r.prompt, answer: r.answer, split: r.split });
      }
    }
    if (kinds.has('vqa')) {
      const count = new Map<string, number>();
      for (const q of ds.vqa) {
        const n = count.get(q.scanId) ?? 0;
        count.set(q.scanId, n + 1);
        samples.push({ id: `${q.scanId}-q${n}`, image: `volumes/${names.get(q.image)}.json`, region: q.type ?? '', kind: 'vqa', prompt: q.prompt, answer: q.answer, options: q.options, split: q.split });
      }
    }
    writeFileSync(join(tmp, 'samples.json'), `${JSON.stringify({ fingerprint, source: file, title: cfg.data.title, pipeline, images: images.length, samples }, null, 1)}\n`);
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(resolve(outDir, '..'), { recursive: true });
    renameSync(tmp, outDir);
    return { dir: outDir, samples: samples.length, images: images.length, skipped: false };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
