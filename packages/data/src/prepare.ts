/**
 * Dataset preparation: an experiment's data section → `.cache/prepared/<experiment>/` holding every scan
 * reoriented, resampled to `data.preprocess.shape` and normalised (images float32, labels int32, raw
 * little-endian with a JSON header; see @llmed/imaging cache.ts) plus `pairs.json` (train/val/test by the
 * experiment's protocol). The training side memory-maps these files. The same per-volume preprocessing
 * (`preprocessImage`, `preprocessLabels` of @llmed/imaging) runs again at inference, so training and
 * inference agree.
 *
 * The folder is built under a staging name and published with @llmed/core `publishFolder`: the previous
 * prepared folder is renamed aside, the new one renamed into place, and only then is the old one removed,
 * so an interrupted prepare leaves nothing half-written and never loses the previous folder (a crash
 * between the two renames is undone by `recoverFolder` at the next prepare). A fingerprint of the data
 * config skips work already done.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import {
  acquireWriteLock, checkExperimentName, dataError, LlmedError, publishFolder, recoverFolder, stagingFolder,
  type ExperimentConfig, type PublishHooks, type Workspace,
} from '@llmed/core';
import {
  assertSameGeometry, preprocessField, preprocessImage, preprocessLabels, readNifti, readLabelMap, reorientToCanonical, resampleToShape,
  smoothRandomField, uniqueLabels, warpNearest, warpTrilinear, writeNifti, writePreparedVolume, toLabelMap,
  type Volume,
} from '@llmed/imaging';
import { pairsForProtocol, type Pair } from './protocols.ts';

/** Where an experiment's raw data lives: `$LLMED_DATA/<basename of data.root>` when set, else data.root. */
export function dataRoot(workspaceRoot: string, cfg: ExperimentConfig): string {
  const env = process.env.LLMED_DATA;
  if (env && cfg.data.protocol !== 'synthetic-deformation') return resolve(env, basename(cfg.data.root));
  return isAbsolute(cfg.data.root) ? cfg.data.root : resolve(workspaceRoot, cfg.data.root);
}

export function preparedDir(workspaceRoot: string, experiment: string): string {
  return join(workspaceRoot, '.cache', 'prepared', checkExperimentName(experiment, `experiment ${JSON.stringify(experiment)}`));
}

export interface PreparedPairs {
  title: string;
  experiment: string;
  shape: [number, number, number];
  labels: number[];
  labelNames?: Record<string, string>;
  train: Pair[];
  val: Pair[];
  test: Pair[];
  fingerprint: string;
  scans: number;
}

/**
 * What decides whether a prepared folder is still current: the data config, the root, and — for datasets
 * described by a manifest (a pairs list, a dataset JSON) — the manifest's content and modification time,
 * so that regenerating or editing a dataset (e.g. `python bench/proxies/proxies.py`) prepares it again.
 */
function fingerprintOf(cfg: ExperimentConfig, root: string): string {
  const manifest = cfg.data.manifest ? join(root, cfg.data.manifest) : undefined;
  const stamp: Record<string, unknown> = { data: cfg.data, root, v: 2 }; // v2: validation pairs held out of training, never test pairs
  if (manifest && existsSync(manifest)) {
    stamp.manifest = { sha256: createHash('sha256').update(readFileSync(manifest)).digest('hex'), mtimeMs: statSync(manifest).mtimeMs };
  }
  return createHash('sha256').update(JSON.stringify(stamp)).digest('hex').slice(0, 16);
}

export interface PrepareOptions {
  force?: boolean;
  onProgress?: (done: number, total: number, what: string) => void;
  log?: (msg: string) => void;
  /** Test seam: runs at the swap point of publishing the prepared folder (old folder aside, new one not yet in). */
  publish?: PublishHooks;
}

/** Prepare an experiment's data, holding the write lock of its prepared folder (one writer at a time). */
export async function prepareExperiment(ws: Workspace, name: string, cfg: ExperimentConfig, opts: PrepareOptions = {}): Promise<{ dir: string; pairs: PreparedPairs; skipped: boolean }> {
  const release = acquireWriteLock(preparedDir(ws.root, name));
  try {
    return await prepareUnlocked(ws, name, cfg, opts);
  } finally {
    release();
  }
}

async function prepareUnlocked(ws: Workspace, name: string, cfg: ExperimentConfig, opts: PrepareOptions): Promise<{ dir: string; pairs: PreparedPairs; skipped: boolean }> {
  const log = opts.log ?? (() => {});
  const root = dataRoot(ws.root, cfg);
  const out = preparedDir(ws.root, name);
  // A prepare killed between its two renames left the previous folder aside: put it back before reading it.
  for (const line of recoverFolder(out)) log(`prepared folder: ${line}`);
  const fingerprint = fingerprintOf(cfg, root);
  const pairsFile = join(out, 'pairs.json');
  if (!opts.force && existsSync(pairsFile)) {
    const prior = JSON.parse(readFileSync(pairsFile, 'utf8')) as PreparedPairs;
    if (prior.fingerprint === fingerprint) return { dir: out, pairs: prior, skipped: true };
  }

  if (cfg.data.protocol === 'synthetic-deformation') await generateSyntheticDeformations(cfg, root, log);
  if (!existsSync(root)) {
    throw new LlmedError('data', `dataset folder ${root} does not exist (${cfg.data.title})`, { where: `experiment ${name}`, hint: cfg.data.howToGet });
  }
  const { scans, train, val, test } = await pairsForProtocol(cfg, root);
  const used = new Set([...train, ...val, ...test].flatMap((p) => [p.moving, p.fixed]));
  const todo = scans.filter((s) => used.has(s.name));
  if (todo.length === 0) throw dataError(root, 'no scans found for the protocol', cfg.data.howToGet);

  const tmp = stagingFolder(out);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const labelValues = new Set<number>();
  // Each scan's raw grid, kept so a pair's true field can be checked against its fixed image without reading it again.
  const rawGrids = new Map<string, Pick<Volume, 'dims' | 'affine' | 'spacing'>>();
  try {
    let done = 0;
    for (const scan of todo) {
      opts.onProgress?.(done, todo.length, scan.name);
      const image = await readNifti(scan.image);
      rawGrids.set(scan.name, { dims: image.dims, affine: image.affine, spacing: image.spacing });
      const pre = preprocessImage(image, cfg.data.preprocess, scan.role, scan.image);
      await writePreparedVolume(tmp, scan.name, pre, { source: scan.image, preprocessing: { orientation: cfg.data.preprocess.orientation, shape: cfg.data.preprocess.shape, ops: scan.role === 'moving' ? cfg.data.preprocess.moving : cfg.data.preprocess.fixed } });
      if (scan.labels) {
        const lab = await readLabelMap(scan.labels);
        assertSameGeometry(image, lab, [scan.image, scan.labels]);
        const plab = preprocessLabels(lab, cfg.data.preprocess, scan.labels);
        for (const v of uniqueLabels(plab)) if (v !== 0) labelValues.add(v);
        await writePreparedVolume(tmp, `${scan.name}_labels`, plab, { source: scan.labels, preprocessing: { orientation: cfg.data.preprocess.orientation, shape: cfg.data.preprocess.shape, labels: cfg.data.preprocess.labels ?? null } });
      }
      done++;
      opts.onProgress?.(done, todo.length, scan.name);
    }
    // A pair's true field (pairs made by a known deformation) goes onto the prepared grid, in its voxels.
    // Keyed by pair name, so a pair listed in two splits is prepared once.
    const truthName = (p: Pair) => `${p.moving}_to_${p.fixed}_truefield`;
    const truths = new Set<string>();
    for (const p of [...train, ...val, ...test]) {
      if (!p.groundTruthField || truths.has(truthName(p))) continue;
      const f = await readNifti(p.groundTruthField);
      assertSameGeometry(rawGrids.get(p.fixed)!, f, [todo.find((s) => s.name === p.fixed)!.image, p.groundTruthField]);
      await writePreparedVolume(tmp, truthName(p), preprocessField(f, cfg.data.preprocess, p.groundTruthField), { source: p.groundTruthField, preprocessing: { orientation: cfg.data.preprocess.orientation, shape: cfg.data.preprocess.shape, field: 'voxels of this grid' } });
      truths.add(truthName(p));
    }
    const withLabels = (p: Pair): Pair => {
      const m = todo.find((s) => s.name === p.moving)!;
      const f = todo.find((s) => s.name === p.fixed)!;
      return {
        moving: p.moving, fixed: p.fixed,
        ...(m.labels && f.labels ? { movingLabels: `${p.moving}_labels`, fixedLabels: `${p.fixed}_labels` } : {}),
        ...(p.groundTruthField ? { groundTruthField: truthName(p) } : {}),
      };
    };
    const wanted = cfg.data.preprocess.labels?.values ?? cfg.evaluate.labels;
    const pairs: PreparedPairs = {
      title: cfg.data.title,
      experiment: name,
      shape: cfg.data.preprocess.shape,
      labels: wanted ? wanted.filter((v) => labelValues.has(v) || labelValues.size === 0) : [...labelValues].sort((a, b) => a - b),
      labelNames: cfg.data.labelNames,
      train: train.map(withLabels),
      val: val.map(withLabels),
      test: test.map(withLabels),
      fingerprint,
      scans: todo.length,
    };
    writeFileSync(join(tmp, 'pairs.json'), `${JSON.stringify(pairs, null, 2)}\n`);
    publishFolder(tmp, out, opts.publish);
    return { dir: out, pairs, skipped: false };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * The demo's data: the template (Colin27) and its labels (AAL), resampled to the prepared grid, each copy
 * warped by its own smooth random field (seeded, so every machine makes the same files). Written as
 * NIfTI into the data root with a `generation.json` describing exactly what was done.
 */
async function generateSyntheticDeformations(cfg: ExperimentConfig, root: string, log: (m: string) => void): Promise<void> {
  const t = cfg.data.template!;
  const stamp = join(root, 'generation.json');
  const params = { template: t, shape: cfg.data.preprocess.shape, orientation: cfg.data.preprocess.orientation ?? null, v: 1 };
  if (existsSync(stamp) && JSON.stringify(JSON.parse(readFileSync(stamp, 'utf8')).params) === JSON.stringify(params)) return;
  for (const f of [t.image, t.labels].filter(Boolean) as string[]) {
    if (!existsSync(f)) throw new LlmedError('data', `template ${f} does not exist`, { where: 'data.template', hint: cfg.data.howToGet });
  }
  log(`generating ${t.copies} deformed copies of ${basename(t.image)} in ${root}`);
  recoverFolder(root);
  const tmp = stagingFolder(root);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const shape = cfg.data.preprocess.shape;
  let image: Volume = await readNifti(t.image);
  if (cfg.data.preprocess.orientation) image = reorientToCanonical(image, cfg.data.preprocess.orientation);
  image = resampleToShape(image, shape, 'linear');
  let labels: Volume<Int32Array> | undefined;
  if (t.labels) {
    const raw = await readLabelMap(t.labels);
    const l: Volume = cfg.data.preprocess.orientation ? reorientToCanonical(raw, cfg.data.preprocess.orientation) : raw;
    labels = toLabelMap(resampleToShape(l, shape, 'nearest'), t.labels);
  }
  const files: { image: string; labels?: string }[] = [];
  for (let c = 0; c < t.copies; c++) {
    const field = smoothRandomField(shape, { maxDisplacement: t.maxDisplacement, smoothness: t.smoothness, seed: t.seed * 1000 + c });
    const name = `copy_${String(c).padStart(2, '0')}`;
    await writeNifti(join(tmp, `${name}.nii.gz`), { ...image, data: warpTrilinear(image.data, shape, field, shape), datatype: 'float32', description: `synthetic deformation ${c} of ${basename(t.image)}` });
    if (labels) await writeNifti(join(tmp, `${name}_labels.nii.gz`), { ...labels, data: warpNearest(labels.data, shape, field, shape), datatype: 'int16', intent: 'LABEL' });
    files.push({ image: `${name}.nii.gz`, ...(labels ? { labels: `${name}_labels.nii.gz` } : {}) });
  }
  writeFileSync(join(tmp, 'generation.json'), `${JSON.stringify({ params, files, note: 'Each copy is the template warped by its own smooth random field (llmed smoothRandomField, seeded). One real subject: not a paper dataset.' }, null, 2)}\n`);
  publishFolder(tmp, root);
}

export function listFiles(dir: string, re: RegExp): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => re.test(f)).sort() : [];
}
