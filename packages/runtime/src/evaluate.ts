/**
 * Batch evaluation of an export on a prepared dataset's test pairs — `llmed evaluate` — natively in Node.
 *
 * For each pair: the prepared (already preprocessed) images go through the exported field predictor (or
 * another `FieldSource`: the accuracy benchmark scores ANTs SyN's fields this way), the moving labels are
 * warped (nearest), and every Metric plugin scores both the registration and the identity ("Initial", the
 * unregistered pair, as the papers' tables start with). Pairs made by a known deformation carry their true
 * field, so `endpoint-error` is scored on them. Outputs, in `out`:
 *
 *   table.md, table.json      the papers' Table 1 shape: Dice mean ± std, |J|≤0 %, HD95, SDlogJ, time
 *   dice_per_label.png        a per-label box plot of Dice over the pairs (registered)
 *   pictures/<pair>_*.png     for the first few pairs: fixed / moving / warped with label contours,
 *                             the deformed grid and the Jacobian map
 *   pairs/<pair>/             the same pairs as NIfTI in the viewer's layout (`llmed view <run>`)
 *
 * The folder is assembled under a temporary name and renamed into place when complete.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { acquireWriteLock, LlmedError, publishFolder, writeFileAtomic } from '@llmed/core';
import { jacobianDeterminant, readPreparedVolume, warpNearest, warpTrilinear, type Volume } from '@llmed/imaging';
import { FieldPredictor } from './predictor.ts';
import { boxPlot, gridPicture, jacobianPicture, savePicture, slicePanel, type Axis } from './pictures/index.ts';
import { checkOutputFolder, writePairVolumes, jsonNumbers } from './register.ts';
import { meanStd, scorePair, type MetricPlugin } from './score.ts';

export interface PreparedPair { moving: string; fixed: string; movingLabels?: string; fixedLabels?: string; groundTruthField?: string }

/**
 * Where evaluation gets each pair's field (voxels of the prepared fixed grid, component-major) and what the
 * table says about the model. `seconds` is the time the field took; evaluation adds the warp time.
 */
export interface FieldSource {
  experiment: string;
  /** Prepared grid the fields are on. */
  shape: readonly number[];
  /** Evaluation label subset and names from the model's experiment, when it has them. */
  labels?: number[];
  labelNames?: Record<string, string>;
  dataTitle?: string;
  /** Where the fields come from (an export folder, a baseline's output folder), its run, checkpoint and step. */
  origin: { export: string; sourceRun: string; checkpoint: string; step: number };
  /** What `shape` mismatches should be fixed by. */
  where: string;
  field(pair: PreparedPair, moving: Float32Array, fixed: Float32Array): Promise<{ field: Float32Array; seconds: number }>;
}

/** An exported model as a field source: onnxruntime-node predicts each field. */
export function exportFieldSource(predictor: FieldPredictor): FieldSource {
  const m = predictor.exported.manifest;
  return {
    experiment: m.experiment,
    shape: m.prepared.shape,
    labels: m.evaluate?.labels as number[] | undefined,
    labelNames: m.data.labelNames,
    dataTitle: m.data.title,
    origin: { export: predictor.exported.dir, sourceRun: m.source.runName ?? m.source.run, checkpoint: m.source.checkpoint, step: m.source.step },
    where: predictor.exported.manifestFile,
    async field(_pair, moving, fixed) {
      const t0 = performance.now();
      const { field } = await predictor.predict(moving, fixed);
      return { field, seconds: (performance.now() - t0) / 1000 };
    },
  };
}

export interface EvaluateOptions {
  /** The exported model to evaluate, or `fields` for fields from elsewhere. */
  predictor?: FieldPredictor;
  fields?: FieldSource;
  /** Prepared dataset folder (pairs.json + volumes). */
  preparedDir: string;
  split?: 'test' | 'val' | 'train';
  /** At most this many pairs (the protocol's order); default all. */
  maxPairs?: number;
  out: string;
  /** Metric plugins scored on every pair; the time per pair is always measured as well. */
  metrics: MetricPlugin[];
  /** Pairs that get pictures and a viewer folder (default 3). */
  pictures?: number;
  /** Row name of the model in the table. */
  method: string;
  log?: (line: string) => void;
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface MetricSummary { mean: number; std: number; n: number }

export interface EvaluationTable {
  tool: 'llmed evaluate';
  createdAt: string;
  experiment: string;
  data: string;
  split: string;
  pairs: number;
  export: string;
  sourceRun: string;
  checkpoint: string;
  step: number;
  rows: { method: string; metrics: Record<string, MetricSummary> }[];
  perPair: { pair: string; moving: string; fixed: string; initial: Record<string, number>; registered: Record<string, number> }[];
  /** Registered Dice per label name over the pairs. */
  dicePerLabel: Record<string, number[]>;
  definitions: Record<string, string>;
  pictures: string[];
}

/** Columns of the table: metric id → heading and how a value is shown (Dice and |J|≤0 in %). */
const COLUMNS: { id: string; heading: string; scale: number; decimals: number }[] = [
  { id: 'dice', heading: 'Dice (%)', scale: 100, decimals: 1 },
  { id: 'jacobian-nonpositive', heading: '\\|J\\|≤0 (%)', scale: 1, decimals: 3 },
  { id: 'jacobian-negative', heading: '\\|J\\|<0 (%)', scale: 1, decimals: 3 },
  { id: 'hd95', heading: 'HD95 (mm)', scale: 1, decimals: 2 },
  { id: 'l2r-hd95', heading: 'HD95 L2R (vox)', scale: 1, decimals: 2 },
  { id: 'sdlogj', heading: 'SDlogJ', scale: 1, decimals: 3 },
  { id: 'l2r-sdlogj', heading: 'SDlogJ L2R', scale: 1, decimals: 3 },
  { id: 'endpoint-error', heading: 'EPE (mm)', scale: 1, decimals: 2 },
  { id: 'time', heading: 'Time (s)', scale: 1, decimals: 3 },
];

function pairName(p: PreparedPair): string {
  return `${p.moving}_to_${p.fixed}`.replace(/[^A-Za-z0-9._-]/g, '_');
}

function readPairs(preparedDir: string, split: string): { pairs: PreparedPair[]; title: string; labels: number[]; labelNames: Record<string, string>; experiment: string } {
  const file = join(preparedDir, 'pairs.json');
  if (!existsSync(file)) throw new LlmedError('data', 'the prepared dataset is missing', { where: file, hint: 'run `llmed data prepare <experiment>` first' });
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const pairs = raw[split] as PreparedPair[] | undefined;
  if (!Array.isArray(pairs) || pairs.length === 0) throw new LlmedError('data', `the prepared dataset has no ${split} pairs`, { where: file });
  return {
    pairs, title: String(raw.title ?? ''), labels: (raw.labels as number[] | undefined) ?? [],
    labelNames: (raw.labelNames as Record<string, string> | undefined) ?? {}, experiment: String(raw.experiment ?? ''),
  };
}

/** "mean ± std" of a metric summary in the column's unit. */
export function summaryCell(s: MetricSummary | undefined, scale: number, decimals: number): string {
  if (!s || s.n === 0) return '—';
  return `${(s.mean * scale).toFixed(decimals)} ± ${(s.std * scale).toFixed(decimals)}`;
}

/**
 * Whether the model did better than leaving the pairs unregistered, on the table's primary metric (Dice when
 * there are labels, else endpoint error): one sentence that says so either way, so nobody reads a model that
 * did not move away from identity as a result. Null when the table has neither metric.
 */
export function identityVerdict(t: EvaluationTable): string | null {
  const [initial, model] = t.rows;
  const dice = initial?.metrics.dice?.n && model?.metrics.dice?.n;
  const id = dice ? 'dice' : initial?.metrics['endpoint-error']?.n && model?.metrics['endpoint-error']?.n ? 'endpoint-error' : null;
  if (!id || !initial || !model) return null;
  const a = initial.metrics[id].mean, b = model.metrics[id].mean;
  const show = (v: number) => (id === 'dice' ? `${(100 * v).toFixed(1)} %` : `${v.toFixed(2)} mm`);
  const gain = id === 'dice' ? b - a : a - b;
  const what = id === 'dice' ? 'Dice' : 'endpoint error';
  return gain > 0
    ? `The model beat identity: ${what} ${show(a)} unregistered → ${show(b)} registered.`
    : `The model did NOT beat identity: ${what} ${show(a)} unregistered, ${show(b)} registered — it has not learned to register these pairs (train longer, or on more data).`;
}

export function tableMarkdown(t: EvaluationTable): string {
  const cols = COLUMNS.filter((c) => t.rows.some((r) => r.metrics[c.id]?.n));
  const lines = [
    `# ${t.experiment}: evaluation on ${t.pairs} ${t.split} pairs`,
    '',
    `Data: ${t.data}`,
    `Model: ${t.export} (run ${t.sourceRun}, checkpoint ${t.checkpoint}, step ${t.step}); onnxruntime-node, no Python.`,
    '',
    `| Method | ${cols.map((c) => c.heading).join(' | ')} |`,
    `|---|${cols.map(() => '---').join('|')}|`,
    ...t.rows.map((r) => `| ${r.method} | ${cols.map((c) => summaryCell(r.metrics[c.id], c.scale, c.decimals)).join(' | ')} |`),
    '',
    'Mean ± sample standard deviation over pairs. ' + cols.map((c) => `${c.heading}: ${t.definitions[c.id] ?? c.id}.`).join(' '),
    '',
  ];
  const verdict = identityVerdict(t);
  if (verdict) lines.push(verdict, '');
  return lines.join('\n');
}

export async function evaluateExport(opts: EvaluateOptions): Promise<{ out: string; table: EvaluationTable }> {
  const log = opts.log ?? (() => undefined);
  const source = opts.fields ?? (opts.predictor ? exportFieldSource(opts.predictor) : undefined);
  if (!source) throw new LlmedError('usage', 'evaluate needs an exported model (predictor) or a field source (fields)');
  const split = opts.split ?? 'test';
  const ds = readPairs(resolve(opts.preparedDir), split);
  const pairs = ds.pairs.slice(0, opts.maxPairs && opts.maxPairs > 0 ? opts.maxPairs : undefined);
  const out = resolve(opts.out);
  checkOutputFolder(out, 'evaluate');
  const release = acquireWriteLock(out);
  try {
    return await evaluateInto(opts, { source, split, ds, pairs, out, log });
  } finally {
    release();
  }
}

interface EvaluationInputs { source: FieldSource; split: string; ds: ReturnType<typeof readPairs>; pairs: PreparedPair[]; out: string; log: (line: string) => void }

/** evaluateExport's work, with the output folder checked and locked. */
async function evaluateInto(opts: EvaluateOptions, { source, split, ds, pairs, out, log }: EvaluationInputs): Promise<{ out: string; table: EvaluationTable }> {
  const staging = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, 'pictures'), { recursive: true });
  const nPictures = Math.min(opts.pictures ?? 3, pairs.length);
  const labelName = (l: number) => ds.labelNames[String(l)] ?? source.labelNames?.[String(l)] ?? String(l);
  // The experiment's evaluation subset (e.g. the 30 standard aseg labels) when it names one, else every label.
  const labels = (source.labels ?? ds.labels).filter((l) => l !== 0);

  const perPair: EvaluationTable['perPair'] = [];
  const dicePerLabel: Record<string, number[]> = {};
  const pictures: string[] = [];
  const initialValues: Record<string, number[]> = {};
  const registeredValues: Record<string, number[]> = {};
  const push = (into: Record<string, number[]>, id: string, v: number) => (into[id] ??= []).push(v);

  try {
    for (let idx = 0; idx < pairs.length; idx++) {
      const pair = pairs[idx];
      const name = pairName(pair);
      opts.onProgress?.(idx, pairs.length, name);
      const moving = (await readPreparedVolume(opts.preparedDir, pair.moving)).volume;
      const fixed = (await readPreparedVolume(opts.preparedDir, pair.fixed)).volume;
      const movingLabels = pair.movingLabels ? ((await readPreparedVolume(opts.preparedDir, pair.movingLabels)).volume.data as Int32Array) : undefined;
      const fixedLabels = pair.fixedLabels ? ((await readPreparedVolume(opts.preparedDir, pair.fixedLabels)).volume.data as Int32Array) : undefined;
      const groundTruthField = pair.groundTruthField ? ((await readPreparedVolume(opts.preparedDir, pair.groundTruthField)).volume.data as Float32Array) : undefined;
      const dims = fixed.dims;
      if (dims.some((d, c) => d !== source.shape[c])) {
        throw new LlmedError('checkpoint', `prepared pair ${name} is ${dims.join('×')}, the model expects ${source.shape.join('×')}`, { where: source.where, hint: 'the export was made for another preparation of the data: prepare again or export again' });
      }

      const { field, seconds: fieldSeconds } = await source.field(pair, moving.data as Float32Array, fixed.data as Float32Array);
      const t0 = performance.now();
      const warped = warpTrilinear(moving.data, dims, field, dims, 1);
      const warpedLabels = movingLabels ? warpNearest(movingLabels, dims, field, dims) : undefined;
      const seconds = fieldSeconds + (performance.now() - t0) / 1000;

      const base = { dims, spacing: fixed.spacing, labels, groundTruthField, movingLabels };
      const initial = scorePair(opts.metrics, { ...base, fixedLabels, warpedLabels: movingLabels, field: new Float32Array(3 * moving.data.length) });
      const registered = scorePair(opts.metrics, { ...base, fixedLabels, warpedLabels, field });
      const row = { pair: name, moving: pair.moving, fixed: pair.fixed, initial: {} as Record<string, number>, registered: {} as Record<string, number> };
      for (const [id, r] of Object.entries(initial.metrics)) { row.initial[id] = r.value; push(initialValues, id, r.value); }
      for (const [id, r] of Object.entries(registered.metrics)) { row.registered[id] = r.value; push(registeredValues, id, r.value); }
      // Time per pair is measured here, always (the papers' tables report it), not a Metric plugin.
      row.registered.time = seconds;
      push(registeredValues, 'time', seconds);
      for (const [label, v] of Object.entries(registered.metrics.dice?.perLabel ?? {})) {
        if (Number.isFinite(v)) (dicePerLabel[labelName(Number(label))] ??= []).push(v);
      }
      perPair.push(row);

      if (idx < nPictures) {
        const detJ = jacobianDeterminant(field, dims);
        const axis: Axis = 2;
        const index = Math.floor(dims[axis] / 2);
        const stem = join(staging, 'pictures', name);
        await savePicture(`${stem}_slices.png`, slicePanel({ fixed: fixed.data, moving: moving.data, warped, dims, fixedLabels, warpedLabels, axis, index }));
        await savePicture(`${stem}_grid.png`, gridPicture(field, dims, axis, index, { background: warped }));
        await savePicture(`${stem}_jacobian.png`, jacobianPicture(detJ, dims, axis, index, { title: `det J, ${name}` }));
        pictures.push(...['slices', 'grid', 'jacobian'].map((k) => `pictures/${name}_${k}.png`));
        const pairDir = join(staging, 'pairs', name);
        mkdirSync(pairDir, { recursive: true });
        await writePairVolumes(pairDir, {
          grid: fixed as Volume, fixed: fixed.data as Float32Array, moving: moving.data as Float32Array, warped, field, detJ,
          fixedLabels, movingLabels, warpedLabels,
        });
        await writeFileAtomic(join(pairDir, 'metrics.json'), `${JSON.stringify({ tool: 'llmed evaluate', pair: name, initial: row.initial, registered: row.registered }, jsonNumbers, 2)}\n`);
      }
      log(`${name}: ${Object.entries(row.registered).map(([k, v]) => `${k} ${Number.isFinite(v) ? v.toFixed(4) : v}`).join(', ')}`);
    }
    opts.onProgress?.(pairs.length, pairs.length, 'done');

    if (Object.keys(dicePerLabel).length) {
      const order = labels.map(labelName).filter((n) => n in dicePerLabel);
      await savePicture(join(staging, 'dice_per_label.png'), boxPlot(dicePerLabel, { title: `${source.experiment}: Dice per label over ${pairs.length} ${split} pairs (${opts.method})`, yLabel: 'DICE', order, yRange: [0, 1] }));
      pictures.unshift('dice_per_label.png');
    }
    const summarize = (values: Record<string, number[]>) => Object.fromEntries(Object.entries(values).map(([id, v]) => [id, meanStd(v)]));
    const table: EvaluationTable = {
      tool: 'llmed evaluate',
      createdAt: new Date().toISOString(),
      experiment: source.experiment,
      data: ds.title || source.dataTitle || '',
      split,
      pairs: pairs.length,
      ...source.origin,
      // a path is written relative to the table's folder (../export), never as this machine's absolute path
      export: isAbsolute(source.origin.export) ? relative(out, source.origin.export) || '.' : source.origin.export,
      sourceRun: isAbsolute(source.origin.sourceRun) ? relative(out, source.origin.sourceRun) || '.' : source.origin.sourceRun,
      rows: [
        { method: 'Initial (no registration)', metrics: summarize(initialValues) },
        { method: opts.method, metrics: summarize(registeredValues) },
      ],
      perPair,
      dicePerLabel,
      definitions: {
        dice: 'mean over labels present in either map of 2|A∩B|/(|A|+|B|)',
        'jacobian-nonpositive': '% of voxels with det J ≤ 0',
        'jacobian-negative': '% of voxels with det J < 0',
        hd95: '95th percentile of symmetric surface distances in mm, mean over labels',
        'l2r-hd95': "Learn2Reg's HD95 in voxels (its official surface-distance formula: area-weighted corner surfels)",
        sdlogj: 'standard deviation of log det J',
        'l2r-sdlogj': "Learn2Reg's SDlogJ (clipped, cropped)",
        'endpoint-error': 'mean ‖u − u*‖ in mm against the true field (pairs made by known deformations; fixed-label foreground)',
        time: opts.fields ? 'seconds per pair for the field and the warp' : 'seconds per pair for field prediction and warping (onnxruntime-node + TypeScript warp)',
      },
      pictures,
    };
    await writeFileAtomic(join(staging, 'table.json'), `${JSON.stringify(table, jsonNumbers, 2)}\n`);
    await writeFileAtomic(join(staging, 'table.md'), tableMarkdown(table));
    mkdirSync(dirname(out), { recursive: true });
    publishFolder(staging, out);
    return { out, table };
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  }
}
