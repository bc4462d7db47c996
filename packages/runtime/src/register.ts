/**
 * Native registration of one pair — `llmed register` — with no Python anywhere on the path:
 *
 *   read NIfTI → the moving scan sampled into the fixed scan's world frame through both affines, on the
 *   model grid prepared from the fixed scan (the manifest's settings, the same TypeScript preprocessing
 *   that prepared the training data) → onnxruntime-node field → the field, in world mm, on the fixed
 *   scan's own grid → the original moving image and labels warped there in one interpolation (trilinear /
 *   nearest) → det J → Metric plugins → an output folder.
 *
 * World geometry is kept: a pair whose scans differ in grid, orientation or field of view is compared where
 * its headers place it, before and after registration. `boxToBox` opts into the other convention (each
 * scan's box stretched onto the other's, for data with dummy headers) and says so.
 *
 * Everything is written on the *fixed scan's grid* with its affine, so the outputs overlay the fixed image
 * voxel for voxel. The output folder is the viewer's single-pair layout (see @llmed/viewer folder.ts):
 * fixed, moving (resampled onto the fixed grid), warped, [fixed_labels, moving_labels, warped_labels],
 * jacobian, field (DISPVECT, mm), metrics.json. It is built under a temporary name and renamed into place
 * when complete.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { acquireWriteLock, LlmedError, publishFolder, writeFileAtomic } from '@llmed/core';
import {
  asFloat32, axisCodes, boxAlignedAffine, countNonFinite, describeExtraDimensions, fieldMmToVoxels, invertAffine, multiplyAffine, voxelToWorld, fieldVoxelsToMm, geometryDifferences, jacobianDeterminant, preprocessImage,
  preprocessImageOnGrid, readNifti, resampleOntoGrid, spacingFromAffine, toLabelMap, writeDisplacementField, writeNifti,
  type NiftiVolume, type Volume,
} from '@llmed/imaging';
// the folding warning counts folds as the jacobian-nonpositive metric does (det J ≤ 0), whichever metrics were asked for
import { nonpositiveJacobianPercent } from '@llmed/plugin-jacobian-nonpositive';
import { openExport, type OpenedExport } from './manifest.ts';
import { affinePrealign, type AffinePrealignment } from './prealign.ts';
import { FieldPredictor } from './predictor.ts';
import { describeLabels, metricNeedsLabels, scorePair, type LabelChoice, type LabelReport, type MetricPlugin, type ScoredPair } from './score.ts';

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
  /** Apply this saved displacement field (NIfTI DISPVECT in mm on the fixed scan's grid) instead of predicting. */
  field?: string;
  /**
   * Ignore where the headers place the two scans: stretch the moving scan's box onto the fixed scan's
   * (after reorienting both to the model's orientation). For data with dummy headers; a warning says so.
   */
  boxToBox?: boolean;
  /** The label ids to score (`--labels 2,3,4` or a lookup table); default: every label in the two maps. */
  labels?: LabelChoice;
  /** Affine pre-alignment (elastix, WebAssembly) before the deformable step (`--affine`). */
  affine?: boolean;
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
  /** How moving and fixed were related: through their affines in world space, or box to box. */
  geometry: 'world' | 'box-to-box';
  /** The model's own grid, on which the field was predicted. */
  modelGrid: { dims: number[]; spacing: number[]; orientation: string };
  /** Which label ids were scored, where the list came from, and which of them are absent from which map. */
  labels: LabelReport | null;
  /** Metrics asked for whose value is not a number, with why. */
  missing: Record<string, string>;
  /** The affine pre-alignment (`--affine`): fixed → moving world transform, and the label metrics after it alone. */
  affine: null | { fixedToMoving: number[]; library: string; seconds: number; metrics: ScoredPair['metrics']; elastix: AffinePrealignment['elastix'] };
  /** What was done to the inputs to bring them to the model's grid (resampling, reorientation). */
  notes: string[];
  metrics: ScoredPair['metrics'];
  /** The label metrics of the unregistered pair (moving labels resampled into the fixed grid through both affines). */
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
  if (vol.components !== 1) {
    const extra = describeExtraDimensions(vol);
    throw new LlmedError('data', `${role} has ${extra.text}; a single 3-D volume is needed`, {
      where: file,
      hint: `pick one ${extra.kind === 'frames' ? 'frame' : 'component'} first, e.g. with nibabel: python -c "import nibabel as n; i = n.load('${file}'); n.save(i.slicer[..., 0], 'one.nii.gz')" (index 0 = the first), or FSL: fslroi ${file} one.nii.gz 0 1`,
    });
  }
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
  if (opts.affine && opts.field) {
    throw new LlmedError('usage', '--affine and --field together: a saved field already holds the whole displacement, affine step included', { hint: 'drop --affine when applying a field written by `llmed register --affine`' });
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

  // How the two scans relate: through their affines (world space), or — asked for explicitly — box to box.
  const pairDiffs = geometryDifferences(moving, fixed);
  const movingGrid = describeGrid(moving);
  if (opts.boxToBox) {
    const boxAffine = boxAlignedAffine(moving, fixed, pre.orientation, moving.file);
    moving.affine = boxAffine;
    moving.spacing = spacingFromAffine(boxAffine);
    if (movingLabelsRaw) { movingLabelsRaw.affine = [...boxAffine]; movingLabelsRaw.spacing = spacingFromAffine(boxAffine); }
    notes.push(`warning: box-to-box (--box-to-box): the moving scan's box was stretched onto the fixed scan's, ignoring where their headers place them in the world${pairDiffs.length ? ` (they differ: ${pairDiffs.join('; ')})` : ''}; Dice and distances are then not world-space comparisons`);
  } else if (pairDiffs.length) {
    notes.push(`moving and fixed differ (${pairDiffs.join('; ')}): the moving scan was resampled into the fixed scan's world frame through both affines`);
  }
  // --affine: elastix finds T (fixed world → moving world); the moving scan is then seen through
  // A' = T⁻¹·A_m, and the field written at the end is the whole displacement, affine included.
  const movingAffine = [...moving.affine];
  let prealign: AffinePrealignment | undefined;
  if (opts.affine) {
    log('affine pre-alignment (elastix, WebAssembly)');
    prealign = await affinePrealign(moving, fixed, { where: moving.file });
    const seen = multiplyAffine(invertAffine(prealign.fixedToMoving), movingAffine);
    moving.affine = seen;
    if (movingLabelsRaw) movingLabelsRaw.affine = [...seen];
    notes.push(`affine pre-alignment with ${prealign.library} (rigid, then affine; mutual information) in ${prealign.seconds.toFixed(1)} s: ${describeAffine(prealign.fixedToMoving)}`);
  }

  // preprocess — the model grid is the fixed scan's, prepared as the manifest says; the moving scan is
  // sampled onto it in world space (one interpolation), so their relation in the world is kept.
  const target = `${pre.orientation ?? 'as stored'} ${pre.shape.join('×')}`;
  const fixedCodes = axisCodes(fixed.affine);
  const fixedResampled = fixed.dims.some((d, c) => d !== pre.shape[c]);
  const fixedReoriented = Boolean(pre.orientation) && fixedCodes !== pre.orientation;
  if (fixedResampled || fixedReoriented) notes.push(`fixed ${describeGrid(fixed)} → ${[fixedReoriented ? `reoriented to ${pre.orientation}` : '', fixedResampled ? `resampled (trilinear) to ${pre.shape.join('×')}` : ''].filter(Boolean).join(', ')} for the model (outputs stay on the fixed grid)`);
  if (pairDiffs.length || opts.boxToBox) {
    notes.push(`moving ${movingGrid} → reoriented to ${pre.orientation ?? 'the fixed orientation'}, resampled through both affines (world space, trilinear) onto the model grid ${target}`);
  }
  for (const v of [moving, fixed]) if (v.nonFinite > 0) notes.push(`${v === moving ? 'moving' : 'fixed'} has ${v.nonFinite} NaN/Inf voxels (the intensity transforms treat them as missing)`);
  const fixedPre = preprocessImage(fixed, pre, 'fixed', fixed.file);
  const movingPre = preprocessImageOnGrid(moving, fixedPre, pre, 'moving', moving.file);
  const modelDims = fixedPre.dims;
  if (modelDims.some((d, c) => d !== m.prepared.shape[c])) {
    throw new LlmedError('checkpoint', `preprocessing gives a ${modelDims.join('×')} grid but the model was exported for ${m.prepared.shape.join('×')}`, { where: exported.manifestFile, hint: 'the manifest does not match the model; export the run again' });
  }
  const fieldOfView = coveredPercent(moving, fixedPre);
  if (fieldOfView < 50) notes.push(`warning: only ${fieldOfView.toFixed(0)} % of the fixed scan's box lies inside the moving scan's field of view (world space): the scans hardly overlap; check their headers, or pass --box-to-box if the headers are dummies`);
  const apart = centreOfMassDistance(movingPre, fixedPre);
  const diagonal = Math.hypot(...fixedPre.dims.map((d, c) => (d - 1) * fixedPre.spacing[c]));
  if (apart > 0.1 * diagonal) {
    notes.push(`warning: the pair looks unaligned${opts.affine ? ' even after the affine pre-alignment' : ''}: the intensity centres of mass lie ${apart.toFixed(1)} mm apart (${((100 * apart) / diagonal).toFixed(0)} % of the fixed box's diagonal); deformable models assume roughly aligned inputs${opts.affine ? '' : ' — pass --affine'}`);
  }
  const tPre = performance.now();

  // field, in world mm on the fixed scan's grid
  const dims = fixed.dims;
  let fieldMm: Float32Array;
  let inferenceMs = 0;
  let predictor: FieldPredictor | undefined;
  if (opts.field) {
    const fieldFile = resolve(opts.field);
    if (!existsSync(fieldFile)) throw new LlmedError('data', 'field file does not exist', { where: fieldFile });
    const f = await readNifti(fieldFile);
    if (f.components !== 3) throw new LlmedError('data', `not a displacement field: ${f.components} component(s), expected 3 (a [nx,ny,nz,1,3] vector image)`, { where: fieldFile });
    if (f.dims.some((d, c) => d !== dims[c])) {
      throw new LlmedError('shape', `field grid ${f.dims.join('×')} does not match the fixed image's grid ${dims.join('×')}`, { where: fieldFile, hint: 'pass a field written by `llmed register` for this fixed image (field.nii.gz, on the fixed grid in mm)' });
    }
    fieldMm = asFloat32(f.data);
    notes.push(`field read from ${fieldFile} (not predicted)`);
  } else {
    predictor = opts.predictor ?? (await FieldPredictor.load(exported, { threads: opts.threads }));
    log(`predicting the field with ${basename(exported.modelFile)} (onnxruntime-node)`);
    const p = await predictor.predict(movingPre.data, fixedPre.data);
    inferenceMs = p.inferenceMs;
    // voxels of the model grid → world mm (vectors) → the fixed grid (the model grid spans the fixed box)
    const onModel: Volume = { data: fieldVoxelsToMm(p.field, fixedPre), dims: fixedPre.dims, components: 3, spacing: fixedPre.spacing, affine: fixedPre.affine };
    fieldMm = resampleOntoGrid(onModel, fixed, 'linear', { clamp: true }).data as Float32Array;
  }
  if (prealign) {
    // the whole displacement: p ↦ T(p + u(p)) − p, so the saved field alone maps the original moving scan
    fieldMm = composeAffineField(prealign.fixedToMoving, fieldMm, fixed);
  }
  if (prealign) {
    moving.affine = movingAffine;
    if (movingLabelsRaw) movingLabelsRaw.affine = [...movingAffine];
  }
  const field = fieldMmToVoxels(fieldMm, fixed);
  const tPredict = performance.now();
  // A NaN field warps to NaN and scores "0 % folding": refuse it, whether read or predicted.
  const nonFinite = countNonFinite(field);
  if (nonFinite > 0) {
    throw new LlmedError('data', `${nonFinite} of the field's ${field.length} values are NaN or infinite`, {
      where: opts.field ? resolve(opts.field) : exported.modelFile,
      hint: opts.field ? 'pass a field written by `llmed register` (field.nii.gz)' : 'the model predicted a non-finite field for these inputs; check them with `llmed data inspect`',
    });
  }

  // the original moving scan and labels, warped onto the fixed grid in one interpolation each
  const warped = resampleOntoGrid(moving, fixed, 'linear', { displacementMm: fieldMm }).data as Float32Array;
  const movingLabelMap = movingLabelsRaw ? toLabelMap(movingLabelsRaw, movingLabelsRaw.file) : undefined;
  const warpedLab = movingLabelMap ? resampleOntoGrid(movingLabelMap, fixed, 'nearest', { displacementMm: fieldMm }).data as Int32Array : undefined;
  const tWarp = performance.now();

  const movingOnFixed = resampleOntoGrid(moving, fixed, 'linear').data as Float32Array;
  const movingLabOnFixed = movingLabelMap ? resampleOntoGrid(movingLabelMap, fixed, 'nearest').data as Int32Array : undefined;
  const fixedLab = fixedLabelsRaw ? toLabelMap(fixedLabelsRaw, fixedLabelsRaw.file).data : undefined;
  const detJ = jacobianDeterminant(field, dims);
  const labelReport = fixedLab && movingLabelMap ? describeLabels(opts.labels, fixedLab, movingLabelMap.data, m.data.labels ?? [], warpedLab) : null;
  if (labelReport) notes.push(...labelReport.notes);
  const evalLabels = labelReport?.scored ?? [];
  const spacing = fixed.spacing;
  const scored = scorePair(opts.metrics, {
    fixedLabels: fixedLab, warpedLabels: warpedLab, movingLabels: movingLabelMap?.data as Int32Array | undefined, field, dims, spacing,
    labels: evalLabels,
  }, { explicit: opts.explicitMetrics, where: opts.fixedLabels });
  const initial = movingLabOnFixed && fixedLab
    ? scorePair(opts.metrics.filter(metricNeedsLabels), { fixedLabels: fixedLab, warpedLabels: movingLabOnFixed, movingLabels: movingLabelMap?.data as Int32Array | undefined, dims, spacing, labels: evalLabels }).metrics
    : {};
  const missing = missingReasons(scored.metrics, labelReport);
  const diceBefore = initial.dice?.value;
  if (!opts.affine && !(apart > 0.1 * diagonal) && diceBefore !== undefined && diceBefore < 0.3) {
    notes.push(`warning: the pair looks unaligned: Dice before registration is ${diceBefore.toFixed(3)}; deformable models assume roughly aligned inputs — pass --affine`);
  }
  let affineReport: RegistrationReport['affine'] = null;
  if (prealign) {
    const affineOnly = composeAffineField(prealign.fixedToMoving, new Float32Array(3 * dims[0] * dims[1] * dims[2]), fixed);
    const labelsAfterAffine = movingLabelMap ? resampleOntoGrid(movingLabelMap, fixed, 'nearest', { displacementMm: affineOnly }).data as Int32Array : undefined;
    const metricsAfterAffine = labelsAfterAffine && fixedLab
      ? scorePair(opts.metrics.filter(metricNeedsLabels), { fixedLabels: fixedLab, warpedLabels: labelsAfterAffine, movingLabels: movingLabelMap?.data as Int32Array | undefined, dims, spacing, labels: evalLabels }).metrics
      : {};
    affineReport = { fixedToMoving: prealign.fixedToMoving.map((x) => round(x, 6)), library: prealign.library, seconds: round(prealign.seconds, 2), metrics: metricsAfterAffine, elastix: prealign.elastix };
  }
  const folded = nonpositiveJacobianPercent(detJ);
  if (folded > 1) notes.push(`warning: ${folded.toFixed(2)} % of the voxels fold (det J ≤ 0): the field is not a plausible deformation there; the pair may be outside what the model was trained on${opts.affine ? '' : ', or unaligned (try --affine)'}`);
  const tMetrics = performance.now();

  // write
  const staging = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  let report: RegistrationReport;
  try {
    await writePairVolumes(staging, {
      grid: fixed, fixed: asFloat32(fixed.data), moving: movingOnFixed, warped, field, detJ,
      fixedLabels: fixedLab, movingLabels: movingLabOnFixed, warpedLabels: warpedLab,
    });
    const tWrite = performance.now();
    const timePerPair = (tWarp - tPre) / 1000;
    report = {
      tool: 'llmed register',
      createdAt: new Date().toISOString(),
      inputs: { moving: moving.file, fixed: fixed.file, movingLabels: movingLabelsRaw?.file ?? null, fixedLabels: fixedLabelsRaw?.file ?? null, field: opts.field ? resolve(opts.field) : null },
      model: { export: exported.dir, experiment: m.experiment, method: m.method, sourceRun: m.source.runName ?? m.source.run, checkpoint: m.source.checkpoint, step: m.source.step, data: m.data.title },
      grid: { dims: [...dims], spacing: spacing.map((s) => round(s, 4)), orientation: axisCodes(fixed.affine), note: "outputs are on the fixed image's own grid with its affine; Dice before and after compare the scans where their headers place them (world space)" },
      geometry: opts.boxToBox ? 'box-to-box' : 'world',
      modelGrid: { dims: [...modelDims], spacing: fixedPre.spacing.map((s) => round(s, 4)), orientation: axisCodes(fixedPre.affine) },
      labels: labelReport,
      notes,
      metrics: scored.metrics,
      initial,
      skipped: scored.skipped,
      missing,
      affine: affineReport,
      timeMs: {
        read: round(tRead - t0, 1), preprocess: round(tPre - tRead, 1), predict: round(tPredict - tPre, 1), inference: round(inferenceMs, 1),
        warp: round(tWarp - tPredict, 1), metrics: round(tMetrics - tWarp, 1), write: round(tWrite - tMetrics, 1), total: round(tWrite - t0, 1),
      },
      timePerPairSeconds: round(timePerPair, 4),
    };
    await writeFileAtomic(join(staging, 'metrics.json'), `${JSON.stringify(report, jsonNumbers, 2)}\n`);
    publishFolder(staging, out);
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  } finally {
    if (predictor && !opts.predictor) await predictor.close();
  }
  return { out, metricsFile: join(out, 'metrics.json'), report };
}

/** A world transform in words: translation and the linear part's scales. */
function describeAffine(T: readonly number[]): string {
  const cols = [0, 1, 2].map((c) => Math.hypot(T[c], T[4 + c], T[8 + c]));
  return `translation ${fmtVec([T[3], T[7], T[11]], 1).replace(/×/g, ', ')} mm, axis scales ${fmtVec(cols, 3).replace(/×/g, ', ')}`;
}

/** The displacement (world mm, on `grid`) of p ↦ T(p + u(p)) − p: a world transform after a field. */
function composeAffineField(T: readonly number[], fieldMm: Float32Array, grid: Volume): Float32Array {
  const [nx, ny, nz] = grid.dims;
  const n = nx * ny * nz;
  const out = new Float32Array(3 * n);
  for (let k = 0, o = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, o++) {
    const p = voxelToWorld(grid.affine, i, j, k);
    const x = p[0] + fieldMm[o], y = p[1] + fieldMm[n + o], z = p[2] + fieldMm[2 * n + o];
    out[o] = T[0] * x + T[1] * y + T[2] * z + T[3] - p[0];
    out[n + o] = T[4] * x + T[5] * y + T[6] * z + T[7] - p[1];
    out[2 * n + o] = T[8] * x + T[9] * y + T[10] * z + T[11] - p[2];
  }
  return out;
}

/** World distance (mm) between the intensity centres of mass of two images on one grid (weights: value − minimum). */
function centreOfMassDistance(a: Volume, b: Volume): number {
  const centre = (v: Volume): number[] => {
    let min = Infinity;
    for (let q = 0; q < v.data.length; q++) if (v.data[q] < min) min = v.data[q];
    const [nx, ny] = v.dims;
    let w = 0, ci = 0, cj = 0, ck = 0;
    for (let q = 0; q < v.data.length; q++) {
      const x = v.data[q] - min;
      if (!(x > 0)) continue;
      w += x; ci += x * (q % nx); cj += x * (Math.floor(q / nx) % ny); ck += x * Math.floor(q / (nx * ny));
    }
    return w > 0 ? voxelToWorld(v.affine, ci / w, cj / w, ck / w) : voxelToWorld(v.affine, ...(v.dims.map((d) => (d - 1) / 2) as [number, number, number]));
  };
  const ca = centre(a), cb = centre(b);
  return Math.hypot(ca[0] - cb[0], ca[1] - cb[1], ca[2] - cb[2]);
}

/** Percentage of the model grid's voxels whose world position lies inside the moving scan's box. */
function coveredPercent(moving: Volume, grid: Volume): number {
  const probe: Volume = { data: new Float32Array(moving.dims[0] * moving.dims[1] * moving.dims[2]).fill(1), dims: moving.dims, components: 1, spacing: moving.spacing, affine: moving.affine };
  const inside = resampleOntoGrid(probe, grid, 'linear', { outside: 0 }).data;
  let n = 0;
  for (let q = 0; q < inside.length; q++) if (inside[q] > 0) n++;
  return (100 * n) / inside.length;
}

/** Why a metric that was computed is not a number: the labels it needed are absent, or the field does not allow it. */
function missingReasons(metrics: ScoredPair['metrics'], labels: LabelReport | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [id, r] of Object.entries(metrics)) {
    if (Number.isFinite(r.value)) continue;
    if (r.perLabel && labels) {
      const absent = labels.absent;
      const parts = [absent.fixed.length ? `absent from the fixed labels: ${absent.fixed.join(', ')}` : '', absent.moving.length ? `absent from the moving labels: ${absent.moving.join(', ')}` : '', absent.warped.length ? `absent from the warped labels: ${absent.warped.join(', ')}` : ''].filter(Boolean);
      out[id] = r.value === Infinity
        ? `infinite: a scored label was warped out of the fixed grid (${parts.join('; ') || 'a surface is missing'})`
        : `no scored label (${labels.scored.join(', ') || 'none'}) has a value: ${parts.join('; ') || 'the label maps share none of them'}`;
    } else out[id] = 'not defined for this field (e.g. every voxel folded, or the field is not finite)';
  }
  return out;
}

/** JSON.stringify replacer: NaN / ±Inf become null (strict JSON for every reader). */
export function jsonNumbers(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? null : value;
}
