/**
 * Native registration of one pair — `llmed register` — with no Python anywhere on the path:
 *
 *   read NIfTI → preprocess (the manifest's settings, the same TypeScript `preprocessImage` /
 *   `preprocessLabels` that prepared the training data) → onnxruntime-node field → TypeScript warps
 *   (trilinear image, nearest labels) → det J → Metric plugins → an output folder.
 *
 * Everything is written on the *preprocessed fixed grid* (canonical orientation, the manifest's shape)
 * with that grid's affine, so the outputs overlay the original fixed image in world coordinates in any
 * viewer. The output folder is the viewer's single-pair layout (see @llmed/viewer folder.ts):
 * fixed, moving, warped, [fixed_labels, moving_labels, warped_labels], jacobian, field (DISPVECT, mm),
 * metrics.json. It is built under a temporary name and renamed into place when complete.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { acquireWriteLock, LlmedError } from '@llmed/core';
import {
  axisCodes, countNonFinite, fieldMmToVoxels, geometryDifferences, jacobianDeterminant, preprocessImage, preprocessLabels, readNifti,
  warpNearest, warpTrilinear, writeDisplacementField, writeFileAtomic, writeNifti, type NiftiVolume, type Volume,
} from '@llmed/imaging';
import { openExport, type OpenedExport } from './manifest.ts';
import { FieldPredictor } from './predictor.ts';
import { metricNeedsLabels, scorePair, type MetricPlugin, type ScoredPair } from './score.ts';

export interface RegisterPairOptions {
  moving: string;
  fixed: string;
  movingLabels?: string;
  fixedLabels?: string;
  /** Export folder (or run folder, or model.onnx path). */
  model: string;
  out: string;
  metrics: MetricPlugin[];
  /** The metric list came from the user (label metrics without labels are then an error, not a skip). */
  explicitMetrics?: boolean;
  /** Apply this saved displacement field (NIfTI DISPVECT on the preprocessed fixed grid) instead of predicting. */
  field?: string;
  threads?: number;
  log?: (line: string) => void;
  /** Reuse a loaded predictor (batch callers). */
  predictor?: FieldPredictor;
}

export interface RegisterPairResult {
  out: string;
  metricsFile: string;
  report: RegistrationReport;
}

/** What metrics.json holds. */
export interface RegistrationReport {
  tool: 'llmed register';
  createdAt: string;
  inputs: { moving: string; fixed: string; movingLabels: string | null; fixedLabels: string | null; field: string | null };
  model: { export: string; experiment: string; method?: string; sourceRun: string; checkpoint: string; step: number; data?: string };
  grid: { dims: number[]; spacing: number[]; orientation: string; note: string };
  /** What was done to the inputs to bring them to the model's grid (resampling, reorientation). */
  notes: string[];
  metrics: ScoredPair['metrics'];
  /** The label metrics of the unregistered pair (moving labels as they are, on the fixed grid). */
  initial: ScoredPair['metrics'];
  skipped: ScoredPair['skipped'];
  timeMs: { read: number; preprocess: number; predict: number; inference: number; warp: number; metrics: number; write: number; total: number };
  /** Seconds per pair as the papers report it: field prediction + warping. */
  timePerPairSeconds: number;
}

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const fmtVec = (v: readonly number[], d = 2) => v.map((x) => +x.toFixed(d)).join('×');

function describeGrid(v: Volume): string {
  return `${axisCodes(v.affine)} ${v.dims.join('×')} at ${fmtVec(v.spacing)} mm`;
}

async function readImage(file: string, role: string): Promise<NiftiVolume> {
  if (!existsSync(file)) throw new LlmedError('data', `${role} file does not exist`, { where: file });
  const vol = await readNifti(file);
  if (vol.components !== 1) throw new LlmedError('data', `${role} has ${vol.components} components; a scalar image is needed`, { where: file });
  return vol;
}

/** The kinds of output folder llmed replaces, and the file that marks each one. */
const OUTPUT_KINDS = {
  register: { marker: 'metrics.json', what: 'an llmed register output' },
  evaluate: { marker: 'table.json', what: 'an llmed evaluate output' },
  export: { marker: 'manifest.json', what: 'an llmed export' },
} as const;
export type OutputKind = keyof typeof OUTPUT_KINDS;

/**
 * The folder that will receive the outputs of `kind`: refuse to replace a folder that is not an llmed output
 * of that kind (`--out .` would otherwise replace the workspace). Missing or empty folders are fine.
 */
export function checkOutputFolder(out: string, kind: OutputKind = 'register'): void {
  let st;
  try { st = lstatSync(out); } catch { return; }
  if (!st.isDirectory()) throw new LlmedError('usage', 'output path exists and is not a folder', { where: out });
  const entries = readdirSync(out);
  const { marker, what } = OUTPUT_KINDS[kind];
  if (entries.length > 0 && !entries.includes(marker)) {
    throw new LlmedError('usage', `output folder exists, is not empty and is not ${what}; refusing to replace it`, { where: out, hint: 'choose another --out' });
  }
}

/** Move a completed staging folder into place (an earlier output is replaced only after the new one is complete). */
export function replaceFolder(staging: string, target: string): void {
  let old: string | null = null;
  if (existsSync(target)) {
    old = `${target}.old-${process.pid}`;
    rmSync(old, { recursive: true, force: true });
    renameSync(target, old);
  }
  try {
    renameSync(staging, target);
  } catch (e) {
    if (old) renameSync(old, target);
    throw e;
  }
  if (old) rmSync(old, { recursive: true, force: true });
}

export interface PairVolumes {
  grid: Volume;
  fixed: Float32Array;
  moving: Float32Array;
  warped: Float32Array;
  field: Float32Array;
  detJ: Float32Array;
  fixedLabels?: Int32Array;
  movingLabels?: Int32Array;
  warpedLabels?: Int32Array;
}

/** Write a pair's volumes in the viewer's layout into `dir` (which must exist). */
export async function writePairVolumes(dir: string, v: PairVolumes): Promise<void> {
  const like = (data: Float32Array | Int32Array, datatype: 'float32' | 'int32', intent?: string): Volume => ({
    data, dims: [...v.grid.dims] as Volume['dims'], components: 1, spacing: [...v.grid.spacing] as Volume['spacing'], affine: [...v.grid.affine], datatype, intent,
  });
  await writeNifti(join(dir, 'fixed.nii.gz'), like(v.fixed, 'float32'), { description: 'fixed, preprocessed' });
  await writeNifti(join(dir, 'moving.nii.gz'), like(v.moving, 'float32'), { description: 'moving, preprocessed' });
  await writeNifti(join(dir, 'warped.nii.gz'), like(v.warped, 'float32'), { description: 'moving warped onto fixed (trilinear)' });
  await writeNifti(join(dir, 'jacobian.nii.gz'), like(v.detJ, 'float32'), { description: 'det J of x -> x + u(x)' });
  await writeDisplacementField(join(dir, 'field.nii.gz'), v.field, v.grid, { description: 'llmed displacement (mm, RAS)' });
  if (v.fixedLabels) await writeNifti(join(dir, 'fixed_labels.nii.gz'), like(v.fixedLabels, 'int32', 'LABEL'), { datatype: 'int32' });
  if (v.movingLabels) await writeNifti(join(dir, 'moving_labels.nii.gz'), like(v.movingLabels, 'int32', 'LABEL'), { datatype: 'int32' });
  if (v.warpedLabels) await writeNifti(join(dir, 'warped_labels.nii.gz'), like(v.warpedLabels, 'int32', 'LABEL'), { datatype: 'int32', description: 'moving labels warped (nearest)' });
}

export async function registerPair(opts: RegisterPairOptions): Promise<RegisterPairResult> {
  const out = resolve(opts.out);
  checkOutputFolder(out, 'register');
  const release = acquireWriteLock(out);
  try {
    return await registerPairLocked(opts, out);
  } finally {
    release();
  }
}

async function registerPairLocked(opts: RegisterPairOptions, out: string): Promise<RegisterPairResult> {
  const log = opts.log ?? (() => undefined);
  const t0 = performance.now();
  if (Boolean(opts.movingLabels) !== Boolean(opts.fixedLabels)) {
    throw new LlmedError('usage', `${opts.movingLabels ? '--moving-labels' : '--fixed-labels'} was given without ${opts.movingLabels ? '--fixed-labels' : '--moving-labels'}`, {
      hint: 'label metrics compare the warped moving labels with the fixed labels: pass both',
    });
  }
  const exported: OpenedExport = opts.predictor?.exported ?? (await openExport(opts.model));
  const m = exported.manifest;
  const pre = m.data.preprocess;

  // read
  const moving = await readImage(resolve(opts.moving), 'moving image');
  const fixed = await readImage(resolve(opts.fixed), 'fixed image');
  const movingLabelsRaw = opts.movingLabels ? await readImage(resolve(opts.movingLabels), 'moving labels') : undefined;
  const fixedLabelsRaw = opts.fixedLabels ? await readImage(resolve(opts.fixedLabels), 'fixed labels') : undefined;
  const notes: string[] = [];
  for (const [labels, image, role] of [[movingLabelsRaw, moving, 'moving'], [fixedLabelsRaw, fixed, 'fixed']] as const) {
    if (!labels) continue;
    if (labels.dims.some((d, c) => d !== image.dims[c])) {
      throw new LlmedError('data', `${role} labels are ${labels.dims.join('×')} but the ${role} image is ${image.dims.join('×')}`, { where: labels.file, hint: `the label map must be a segmentation of ${image.file}, on its voxel grid` });
    }
    // Same voxel grid, different header: some segmentations are saved with stale zooms or origin (the
    // OASIS-derived ones here are). A segmentation indexes its image voxel for voxel, so the image's
    // affine is taken — and said — rather than resampling the labels through a header that is wrong.
    const diffs = geometryDifferences(labels, image);
    if (diffs.length) {
      labels.affine = [...image.affine];
      labels.spacing = [...image.spacing] as typeof labels.spacing;
      notes.push(`${role} labels have the image's ${image.dims.join('×')} grid but another header (${diffs.join('; ')}): used voxel for voxel with the image's affine`);
    }
  }
  const tRead = performance.now();

  // preprocess — and say what it did where inputs differ from each other or from the model's grid
  const target = `${pre.orientation ?? 'as stored'} ${pre.shape.join('×')}`;
  const pairDiffs = geometryDifferences(moving, fixed);
  if (pairDiffs.length) notes.push(`moving and fixed differ (${pairDiffs.join('; ')}): both were reoriented and resampled to the model's grid (${target}) as the manifest says`);
  for (const v of [moving, fixed]) {
    const role = v === moving ? 'moving' : 'fixed';
    const codes = axisCodes(v.affine);
    const resampled = v.dims.some((d, c) => d !== pre.shape[c]);
    const reoriented = Boolean(pre.orientation) && codes !== pre.orientation;
    if (resampled || reoriented) notes.push(`${role} ${describeGrid(v)} → ${[reoriented ? `reoriented to ${pre.orientation}` : '', resampled ? `resampled (trilinear${opts.movingLabels ? '; labels nearest' : ''}) to ${pre.shape.join('×')}` : ''].filter(Boolean).join(', ')}`);
    if (v.nonFinite > 0) notes.push(`${role} has ${v.nonFinite} NaN/Inf voxels (the intensity transforms treat them as missing)`);
  }
  const movingPre = preprocessImage(moving, pre, 'moving', moving.file);
  const fixedPre = preprocessImage(fixed, pre, 'fixed', fixed.file);
  const movingLab = movingLabelsRaw ? preprocessLabels(movingLabelsRaw, pre, movingLabelsRaw.file).data : undefined;
  const fixedLab = fixedLabelsRaw ? preprocessLabels(fixedLabelsRaw, pre, fixedLabelsRaw.file).data : undefined;
  const dims = fixedPre.dims;
  if (dims.some((d, c) => d !== m.prepared.shape[c])) {
    throw new LlmedError('checkpoint', `preprocessing gives a ${dims.join('×')} grid but the model was exported for ${m.prepared.shape.join('×')}`, { where: exported.manifestFile, hint: 'the manifest does not match the model; export the run again' });
  }
  const tPre = performance.now();

  // field
  let field: Float32Array;
  let inferenceMs = 0;
  let predictor: FieldPredictor | undefined;
  if (opts.field) {
    const fieldFile = resolve(opts.field);
    if (!existsSync(fieldFile)) throw new LlmedError('data', 'field file does not exist', { where: fieldFile });
    const f = await readNifti(fieldFile);
    if (f.components !== 3) throw new LlmedError('data', `not a displacement field: ${f.components} component(s), expected 3 (a [nx,ny,nz,1,3] vector image)`, { where: fieldFile });
    if (f.dims.some((d, c) => d !== dims[c])) {
      throw new LlmedError('shape', `field grid ${f.dims.join('×')} does not match the preprocessed fixed grid ${dims.join('×')}`, { where: fieldFile, hint: 'pass a field written by `llmed register` for this model (field.nii.gz)' });
    }
    field = fieldMmToVoxels(f.data, fixedPre);
    notes.push(`field read from ${fieldFile} (not predicted)`);
  } else {
    predictor = opts.predictor ?? (await FieldPredictor.load(exported, { threads: opts.threads }));
    log(`predicting the field with ${basename(exported.modelFile)} (onnxruntime-node)`);
    const p = await predictor.predict(movingPre.data, fixedPre.data);
    field = p.field;
    inferenceMs = p.inferenceMs;
  }
  const tPredict = performance.now();
  // A NaN field warps to NaN and scores "0 % folding": refuse it, whether read or predicted.
  const nonFinite = countNonFinite(field);
  if (nonFinite > 0) {
    throw new LlmedError('data', `${nonFinite} of the field's ${field.length} values are NaN or infinite`, {
      where: opts.field ? resolve(opts.field) : exported.modelFile,
      hint: opts.field ? 'pass a field written by `llmed register` (field.nii.gz)' : 'the model predicted a non-finite field for these inputs; check them with `llmed data inspect`',
    });
  }

  const warped = warpTrilinear(movingPre.data, dims, field, dims, 1);
  const warpedLab = movingLab ? warpNearest(movingLab, dims, field, dims) : undefined;
  const tWarp = performance.now();

  const detJ = jacobianDeterminant(field, dims);
  const evalLabels = ((m.evaluate?.labels as number[] | undefined) ?? m.data.labels ?? []).filter((l) => l !== 0);
  const scored = scorePair(opts.metrics, {
    fixedLabels: fixedLab, warpedLabels: warpedLab, field, dims, spacing: fixedPre.spacing,
    labels: evalLabels,
  }, { explicit: opts.explicitMetrics, where: opts.fixedLabels });
  const initial = movingLab && fixedLab
    ? scorePair(opts.metrics.filter(metricNeedsLabels), { fixedLabels: fixedLab, warpedLabels: movingLab, dims, spacing: fixedPre.spacing, labels: evalLabels }).metrics
    : {};
  const tMetrics = performance.now();

  // write
  const staging = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  let report: RegistrationReport;
  try {
    await writePairVolumes(staging, {
      grid: fixedPre, fixed: fixedPre.data, moving: movingPre.data, warped, field, detJ,
      fixedLabels: fixedLab, movingLabels: movingLab, warpedLabels: warpedLab,
    });
    const tWrite = performance.now();
    const timePerPair = (tWarp - tPre) / 1000;
    report = {
      tool: 'llmed register',
      createdAt: new Date().toISOString(),
      inputs: { moving: moving.file, fixed: fixed.file, movingLabels: movingLabelsRaw?.file ?? null, fixedLabels: fixedLabelsRaw?.file ?? null, field: opts.field ? resolve(opts.field) : null },
      model: { export: exported.dir, experiment: m.experiment, method: m.method, sourceRun: m.source.runName ?? m.source.run, checkpoint: m.source.checkpoint, step: m.source.step, data: m.data.title },
      grid: { dims: [...dims], spacing: fixedPre.spacing.map((s) => round(s, 4)), orientation: axisCodes(fixedPre.affine), note: 'outputs are on the preprocessed fixed grid; its affine places them on the fixed image in world space' },
      notes,
      metrics: scored.metrics,
      initial,
      skipped: scored.skipped,
      timeMs: {
        read: round(tRead - t0, 1), preprocess: round(tPre - tRead, 1), predict: round(tPredict - tPre, 1), inference: round(inferenceMs, 1),
        warp: round(tWarp - tPredict, 1), metrics: round(tMetrics - tWarp, 1), write: round(tWrite - tMetrics, 1), total: round(tWrite - t0, 1),
      },
      timePerPairSeconds: round(timePerPair, 4),
    };
    await writeFileAtomic(join(staging, 'metrics.json'), `${JSON.stringify(report, jsonNumbers, 2)}\n`);
    replaceFolder(staging, out);
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  } finally {
    if (predictor && !opts.predictor) await predictor.close();
  }
  return { out, metricsFile: join(out, 'metrics.json'), report };
}

/** JSON.stringify replacer: NaN / ±Inf become null (strict JSON for every reader). */
export function jsonNumbers(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? null : value;
}
