/**
 * Dataset descriptions on disk: Learn2Reg dataset JSON files and plain pair lists.
 *
 * Learn2Reg (`OASIS_dataset.json`, `AbdomenMRCT_dataset.json`, ...) lists
 *   `training: [{ image, label?, mask? }]`, `test: [{ image } | "path"]`,
 *   `training_paired_images`, `registration_val`, `registration_test: [{ fixed, moving }]`,
 * with paths relative to the JSON file's folder (`./imagesTr/OASIS_0001_0000.nii.gz`). Every path
 * is resolved against that folder; a path that leaves it (`../..`, absolute elsewhere, or a symlink
 * pointing out) or names a missing file is a `dataError` naming the JSON file and the entry
 * (`registration_val[3].moving`). Labels of pair members are looked up from the `training`/`test`
 * entries with the same image.
 *
 * A pairs file is either JSON — `[{ "moving": ..., "fixed": ..., "movingLabels"?: ..., "fixedLabels"?: ... }]`
 * — or CSV with a header `moving,fixed[,moving_labels,fixed_labels,ground_truth_field]`; paths are relative to the
 * pairs file's folder.
 */
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { dataError } from '@llmed/core/errors';

/** One registration pair: `moving` is warped onto `fixed`. Paths are absolute once resolved. */
export interface Pair {
  moving: string;
  fixed: string;
  movingLabels?: string;
  fixedLabels?: string;
  /** The true displacement moving → fixed when the pair was made by a known deformation: NIfTI DISPVECT
   *  in mm on the fixed image's grid, fixed(p) = moving(p + u(p)). Scored by `endpoint-error`. */
  groundTruthField?: string;
}

/** One scan of a dataset: image, and its label map and mask where the dataset has them. */
export interface DatasetImage {
  image: string;
  label?: string;
  mask?: string;
}

export interface Learn2RegDataset {
  /** The JSON file read. */
  file: string;
  /** Folder all paths are relative to (the JSON's folder). */
  root: string;
  name?: string;
  training: DatasetImage[];
  test: DatasetImage[];
  /** `training_paired_images` (datasets with paired scans). */
  trainingPairedImages: Pair[];
  /** `registration_val`. */
  registrationVal: Pair[];
  /** `registration_test`. */
  registrationTest: Pair[];
  /** The parsed JSON, for fields this reader does not interpret. */
  raw: Record<string, unknown>;
}

export interface DatasetReadOptions {
  /** Check that every named file exists (default true). Paths outside the root are refused either way. */
  checkFiles?: boolean;
}

/**
 * Resolve `rel` against `root` and check it stays inside `root` (lexically and, for existing files,
 * after following symlinks) and, if `checkFiles`, that it exists. Errors name `file` and `entry`.
 */
export function resolveInside(root: string, rel: string, file: string, entry: string, checkFiles: boolean): string {
  if (typeof rel !== 'string' || rel.length === 0) {
    throw dataError(file, `${entry}: expected a file path string, got ${JSON.stringify(rel)}`);
  }
  const abs = path.resolve(root, rel);
  const inside = (r: string, p: string) => {
    const x = path.relative(r, p);
    return x !== '' && !x.startsWith('..') && !path.isAbsolute(x);
  };
  if (!inside(root, abs)) {
    throw dataError(file, `${entry}: path '${rel}' resolves outside the dataset folder ${root}`, 'dataset paths must stay inside the folder of the dataset JSON');
  }
  if (existsSync(abs)) {
    const realRoot = realpathSync(root);
    const real = realpathSync(abs);
    if (!inside(realRoot, real)) {
      throw dataError(file, `${entry}: path '${rel}' is a link to ${real}, outside the dataset folder ${root}`);
    }
    if (checkFiles && !statSync(abs).isFile()) throw dataError(file, `${entry}: '${rel}' is not a file`);
  } else if (checkFiles) {
    throw dataError(file, `${entry}: file not found: '${rel}' (looked for ${abs})`);
  }
  return abs;
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw dataError(file, `cannot read file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw dataError(file, `invalid JSON: ${(e as Error).message}`);
  }
}

/** Read and check a Learn2Reg dataset JSON (see module doc). Synchronous: these files are small. */
export function readLearn2RegDataset(jsonFile: string, opts: DatasetReadOptions = {}): Learn2RegDataset {
  const file = path.resolve(jsonFile);
  const root = path.dirname(file);
  const check = opts.checkFiles ?? true;
  const raw = readJson(file);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw dataError(file, 'a Learn2Reg dataset JSON must be an object');
  const j = raw as Record<string, unknown>;
  const list = (key: string): unknown[] => {
    const v = j[key];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw dataError(file, `"${key}" must be an array`);
    return v;
  };

  const readImages = (key: string): DatasetImage[] =>
    list(key).map((e, i) => {
      const entry = `${key}[${i}]`;
      if (typeof e === 'string') return { image: resolveInside(root, e, file, entry, check) };
      if (typeof e !== 'object' || e === null) throw dataError(file, `${entry}: expected {"image": ...} or a path string`);
      const o = e as Record<string, unknown>;
      const img: DatasetImage = { image: resolveInside(root, o.image as string, file, `${entry}.image`, check) };
      if (o.label !== undefined) img.label = resolveInside(root, o.label as string, file, `${entry}.label`, check);
      if (o.mask !== undefined) img.mask = resolveInside(root, o.mask as string, file, `${entry}.mask`, check);
      return img;
    });

  const training = readImages('training');
  const test = readImages('test');
  const labelOf = new Map<string, string>();
  for (const e of [...training, ...test]) if (e.label) labelOf.set(e.image, e.label);

  const readPairs = (key: string): Pair[] =>
    list(key).map((e, i) => {
      const entry = `${key}[${i}]`;
      if (typeof e !== 'object' || e === null) throw dataError(file, `${entry}: expected {"fixed": ..., "moving": ...}`);
      const o = e as Record<string, unknown>;
      const p: Pair = {
        moving: resolveInside(root, o.moving as string, file, `${entry}.moving`, check),
        fixed: resolveInside(root, o.fixed as string, file, `${entry}.fixed`, check),
      };
      const ml = labelOf.get(p.moving);
      const fl = labelOf.get(p.fixed);
      if (ml) p.movingLabels = ml;
      if (fl) p.fixedLabels = fl;
      return p;
    });

  return {
    file,
    root,
    name: typeof j.name === 'string' ? j.name : undefined,
    training,
    test,
    trainingPairedImages: readPairs('training_paired_images'),
    registrationVal: readPairs('registration_val'),
    registrationTest: readPairs('registration_test'),
    raw: j,
  };
}

/** Split one CSV line (RFC 4180 quoting: "a,b" and "" inside quotes). */
function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (q) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') q = false;
      else cur += ch;
    } else if (ch === '"') q = true;
    else if (ch === ',') {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  out.push(cur.trim());
  return out;
}

/** A pair's optional files: JSON key and CSV column. */
const OPTIONAL_PAIR_FILES = [['movingLabels', 'moving_labels'], ['fixedLabels', 'fixed_labels'], ['groundTruthField', 'ground_truth_field']] as const;
const PAIR_KEYS = ['moving', 'fixed', ...OPTIONAL_PAIR_FILES.map(([key]) => key)];

/**
 * Read a pairs file (JSON array or CSV, see module doc); synchronous. Paths are resolved against the file's folder
 * and, unless `checkFiles: false`, must exist. Errors name the file and the entry or CSV line.
 */
export function readPairsFile(pairsFile: string, opts: DatasetReadOptions = {}): Pair[] {
  const file = path.resolve(pairsFile);
  const dir = path.dirname(file);
  const check = opts.checkFiles ?? true;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw dataError(file, `cannot read file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const resolve = (p: unknown, entry: string): string => {
    if (typeof p !== 'string' || p.length === 0) throw dataError(file, `${entry}: expected a file path, got ${JSON.stringify(p)}`);
    const abs = path.resolve(dir, p);
    if (check && !existsSync(abs)) throw dataError(file, `${entry}: file not found: '${p}' (looked for ${abs})`);
    return abs;
  };

  const trimmed = text.trimStart();
  if (file.endsWith('.json') || trimmed.startsWith('[')) {
    let j: unknown;
    try {
      j = JSON.parse(text);
    } catch (e) {
      throw dataError(file, `invalid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(j)) throw dataError(file, 'a JSON pairs file must be an array of {"moving", "fixed", "movingLabels"?, "fixedLabels"?, "groundTruthField"?}');
    return j.map((e, i) => {
      const entry = `[${i}]`;
      if (typeof e !== 'object' || e === null) throw dataError(file, `${entry}: expected an object with "moving" and "fixed"`);
      const o = e as Record<string, unknown>;
      for (const k of Object.keys(o)) {
        if (!PAIR_KEYS.includes(k)) throw dataError(file, `${entry}: unknown key "${k}" (allowed: ${PAIR_KEYS.join(', ')})`);
      }
      const p: Pair = { moving: resolve(o.moving, `${entry}.moving`), fixed: resolve(o.fixed, `${entry}.fixed`) };
      for (const [key] of OPTIONAL_PAIR_FILES) if (o[key] !== undefined) p[key] = resolve(o[key], `${entry}.${key}`);
      return p;
    });
  }

  const lines = text.split(/\r?\n/);
  const headerIdx = lines.findIndex((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  if (headerIdx < 0) throw dataError(file, 'empty pairs file');
  const header = splitCsvLine(lines[headerIdx]).map((h) => h.toLowerCase());
  const col = (name: string) => header.indexOf(name);
  const known = ['moving', 'fixed', ...OPTIONAL_PAIR_FILES.map(([, column]) => column)];
  for (const h of header) if (!known.includes(h)) throw dataError(file, `line ${headerIdx + 1}: unknown column "${h}" (expected moving,fixed[,${known.slice(2).join(',')}])`);
  if (col('moving') < 0 || col('fixed') < 0) throw dataError(file, `line ${headerIdx + 1}: the header must name columns moving and fixed, got "${lines[headerIdx]}"`);
  const pairs: Pair[] = [];
  for (let li = headerIdx + 1; li < lines.length; li++) {
    const line = lines[li];
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    const cells = splitCsvLine(line);
    const entry = `line ${li + 1}`;
    if (cells.length !== header.length) throw dataError(file, `${entry}: ${cells.length} columns, the header has ${header.length}`);
    const p: Pair = { moving: resolve(cells[col('moving')], `${entry} moving`), fixed: resolve(cells[col('fixed')], `${entry} fixed`) };
    for (const [key, column] of OPTIONAL_PAIR_FILES) if (col(column) >= 0 && cells[col(column)]) p[key] = resolve(cells[col(column)], `${entry} ${column}`);
    pairs.push(p);
  }
  return pairs;
}

/** Absolute paths of the `.nii` / `.nii.gz` files directly in `dir`, sorted by name; [] if `dir` is absent. */
export function listNifti(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /\.nii(\.gz)?$/.test(f) && !f.startsWith('.'))
    .sort()
    .map((f) => path.resolve(dir, f));
}
