/**
 * What the viewer shows: the registration pairs, or the report samples, found in a folder.
 *
 * Four layouts are accepted (all written by llmed):
 *
 * - an output folder of `llmed register`: `fixed`, `moving`, `warped` volumes (required), optional
 *   `fixed_labels`, `moving_labels`, `warped_labels`, `jacobian` (det J), `field` (DISPVECT) and
 *   `metrics.json` — one pair;
 * - a run folder evaluated by `llmed evaluate`: `eval/pairs/<pair>/`, each laid out like an output
 *   folder — several pairs, offered by a selector on the page;
 * - a report evaluation folder (`evaluateReportExport`, `llmed evaluate <report run>`): `samples.json`
 *   (per sample: prompt, reference answer, generated text, scores), `samples/<id>.nii.gz` (the prepared CT
 *   the model saw) and `table.json` — layout 'report', one entry per sample;
 * - a report run folder whose `eval/` is such a folder — also layout 'report'.
 *
 * Volumes may be `.nii.gz` (what llmed writes) or plain `.nii`. The scan is cheap (readdir + stat),
 * so the server repeats it per page load: a run still being evaluated shows its new pairs on reload.
 */
import { existsSync, lstatSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative, resolve, sep } from 'node:path';
import { dataError } from '@llmed/core/errors';

/** Volume roles of one pair, in the order the page lays them out. */
export const REQUIRED_VOLUMES = ['fixed', 'moving', 'warped'] as const;
export const OPTIONAL_VOLUMES = ['fixed_labels', 'moving_labels', 'warped_labels', 'jacobian', 'field'] as const;
export type VolumeRole = (typeof REQUIRED_VOLUMES)[number] | (typeof OPTIONAL_VOLUMES)[number];

/** Where a run folder keeps its evaluated pairs. */
export const RUN_PAIRS_DIR = join('eval', 'pairs');

const NIFTI_EXTENSIONS = ['.nii.gz', '.nii'] as const;

export interface ViewerPair {
  /** The pair's name: its folder name under eval/pairs, or the output folder's own name. */
  name: string;
  /** Folder of the pair relative to the served root, with '/' separators ('' for the root itself). */
  dir: string;
  /** File name (inside `dir`) of each volume that exists. */
  volumes: Partial<Record<VolumeRole, string>>;
  /** Parsed metrics.json, or null when absent; `{ error }` when present but not valid JSON. */
  metrics: unknown;
}

/** Where a report run folder keeps its evaluation (samples.json, samples/, table.json). */
export const RUN_EVAL_DIR = 'eval';
/** The list of evaluated samples in a report evaluation folder. */
export const REPORT_SAMPLES_FILE = 'samples.json';

/** One evaluated sample of a report evaluation folder, as the page shows it. */
export interface ReportSample {
  id: string;
  kind: 'report' | 'vqa';
  /** The body region a report describes (report samples). */
  region?: string;
  /** The scan the sample comes from, when samples.json names it. */
  scanId?: string;
  /** The text the model was given after the image tokens. */
  prompt: string;
  /** VQA: the question without its choices (the prompt up to ` Choices: `). */
  question?: string;
  /** VQA: the choices by letter. */
  options?: Record<string, string>;
  /** The reference: the ground-truth report, or the correct letter. */
  reference: string;
  /** The model's text, or the letter it scored highest. */
  generated: string;
  /** Per-sample scores (null where the metric gave no finite value: JSON has no NaN). */
  scores: Record<string, number | null>;
  /** Why generation stopped ('stop' at end of text, 'length' at the token limit), when recorded. */
  finish?: string;
  /** The prepared CT relative to the served root, with '/' separators; null when there is none to show. */
  ct: string | null;
  /** Why `ct` is null (not written, or refused), for the page to say. */
  ctNote?: string;
}

export interface ViewerFolder {
  /** Absolute path of the served folder. */
  root: string;
  layout: 'output' | 'run' | 'report';
  /** Registration pairs; empty for a report folder. */
  pairs: ViewerPair[];
  /** Report samples in samples.json order; only for layout 'report'. */
  samples?: ReportSample[];
  /** Report folder: the evaluation folder relative to the root ('' or 'eval'). */
  evalDir?: string;
  /** Report folder: parsed table.json (per-region metrics, VQA accuracy); null when absent, `{ error }` when broken. */
  table?: unknown;
}

/** The file of a volume role in `dir` (`fixed.nii.gz` before `fixed.nii`), or undefined. */
function findVolume(dir: string, role: VolumeRole): string | undefined {
  for (const ext of NIFTI_EXTENSIONS) {
    const file = `${role}${ext}`;
    if (isFile(join(dir, file))) return file;
  }
  return undefined;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Required roles absent from `dir`. */
function missingVolumes(dir: string): string[] {
  return REQUIRED_VOLUMES.filter((role) => findVolume(dir, role) === undefined).map((role) => `${role}.nii.gz`);
}

function readMetrics(dir: string, name = 'metrics.json'): unknown {
  const file = join(dir, name);
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    // A broken metrics file must not hide the images; the page shows the reason instead of a table.
    return { error: `${name} is not valid JSON: ${(e as Error).message}` };
  }
}

function pairIn(root: string, dir: string, name: string): ViewerPair {
  const volumes: Partial<Record<VolumeRole, string>> = {};
  for (const role of [...REQUIRED_VOLUMES, ...OPTIONAL_VOLUMES]) {
    const file = findVolume(dir, role);
    if (file) volumes[role] = file;
  }
  return { name, dir: relative(root, dir).split(sep).join('/'), volumes, metrics: readMetrics(dir) };
}

/** A regular file that is not a symbolic link (lstat: the link itself is looked at, not its target). */
function isPlainFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * A sample id names its files (`samples/<id>.nii.gz`), so it must be one plain file-name segment: no
 * separators, no NUL, not `.` or `..` — otherwise a crafted samples.json could point the page elsewhere.
 */
function isSafeId(id: string): boolean {
  return id !== '' && id !== '.' && id !== '..' && !/[/\\\0]/.test(id) && !/^[a-zA-Z]:/.test(id) && id.length <= 200;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Read `<evalDir>/samples.json` of a report evaluation into the page's samples. Throws
 * `LlmedError('data')` naming samples.json and the first bad entry (its index and id) when the file is a
 * link, is not JSON, is not a list, is empty, or an entry lacks a field the evaluator writes.
 */
function readReportSamples(root: string, evalDir: string, hint: string): ReportSample[] {
  const file = join(evalDir, REPORT_SAMPLES_FILE);
  if (isLink(file)) throw dataError(file, 'is a symbolic link; the viewer reads only regular files inside the folder', hint);
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw dataError(file, `not valid JSON: ${(e as Error).message}`, hint);
  }
  // evaluateReportExport writes a bare list; accept `{ samples: [...] }` too, as the prepared folder's file is shaped.
  const list = Array.isArray(doc) ? doc : isRecord(doc) && Array.isArray(doc.samples) ? doc.samples : null;
  if (list === null) throw dataError(file, 'not a list of samples', hint);
  if (list.length === 0) throw dataError(file, 'lists no samples', hint);

  const samplesDir = join(evalDir, 'samples');
  const samplesDirLinked = isLink(samplesDir);
  const seen = new Set<string>();
  return list.map((entry, index): ReportSample => {
    const at = `sample ${index}`;
    if (!isRecord(entry)) throw dataError(file, `${at} is not an object`, hint);
    const id = entry.id;
    if (typeof id !== 'string' || !isSafeId(id)) throw dataError(file, `${at} has ${typeof id === 'string' ? `an unsafe id ${JSON.stringify(id)} (it names files under samples/: one plain name, no path separators)` : 'no string id'}`, hint);
    if (seen.has(id)) throw dataError(file, `${at} repeats the id ${id}`, hint);
    seen.add(id);
    const kind = entry.kind;
    if (kind !== 'report' && kind !== 'vqa') throw dataError(file, `${at} (${id}) has kind ${JSON.stringify(kind)}, not "report" or "vqa"`, hint);
    for (const field of ['prompt', 'answer'] as const) {
      if (typeof entry[field] !== 'string') throw dataError(file, `${at} (${id}) lacks the string field "${field}"`, hint);
    }
    if (typeof entry.generated !== 'string') {
      // The prepared folder's samples.json has the same entries without generations: say which file is wanted.
      throw dataError(file, `${at} (${id}) has no "generated" text: this is not an evaluation's samples.json (a prepared dataset's?)`, 'run `llmed evaluate <report run>` and view <run> or <run>/eval');
    }
    const prompt = entry.prompt as string;
    const scores: Record<string, number | null> = {};
    if (isRecord(entry.scores)) for (const [k, v] of Object.entries(entry.scores)) if (typeof v === 'number' || v === null) scores[k] = v;
    const options = isRecord(entry.options) ? Object.fromEntries(Object.entries(entry.options).filter(([, v]) => typeof v === 'string')) as Record<string, string> : undefined;

    let ct: string | null = null;
    let ctNote: string | undefined;
    const volume = `${id}.nii.gz`;
    if (samplesDirLinked) ctNote = 'samples/ is a symbolic link: not followed';
    else if (isPlainFile(join(samplesDir, volume))) ct = relative(root, join(samplesDir, volume)).split(sep).join('/');
    else if (isLink(join(samplesDir, volume))) ctNote = `samples/${volume} is a symbolic link: not followed`;
    else ctNote = `samples/${volume} was not written (evaluated without pictures?)`;

    return {
      id,
      kind,
      region: typeof entry.region === 'string' ? entry.region : undefined,
      scanId: typeof entry.scanId === 'string' ? entry.scanId : undefined,
      prompt,
      // The evaluator asks the question without its choices the same way (evaluate-report.ts).
      question: kind === 'vqa' ? prompt.split(' Choices: ')[0] : undefined,
      options,
      reference: entry.answer as string,
      generated: entry.generated,
      scores,
      finish: typeof entry.finish === 'string' ? entry.finish : undefined,
      ct,
      ctNote,
    };
  });
}

function reportFolder(root: string, evalDir: string, hint: string): ViewerFolder {
  const samples = readReportSamples(root, evalDir, hint);
  const table = isLink(join(evalDir, 'table.json')) ? { error: 'table.json is a symbolic link: not followed' } : readMetrics(evalDir, 'table.json');
  return { root, layout: 'report', pairs: [], samples, evalDir: relative(root, evalDir).split(sep).join('/'), table };
}

/** Natural order, so pair_2 comes before pair_10. */
const naturalCompare = new Intl.Collator('en', { numeric: true }).compare;

/**
 * Scan `folder` for pairs or report samples. Throws `LlmedError('data')` naming the folder and what is
 * missing when the folder does not exist, or holds neither the three volumes of an output folder, nor a
 * complete `eval/pairs/<pair>/` subfolder, nor a report evaluation's samples.json (here or in eval/);
 * a report evaluation's broken samples.json is named with its first bad entry.
 */
export function scanViewerFolder(folder: string): ViewerFolder {
  const root = resolve(folder);
  const hint = 'point it at an output folder of `llmed register` (fixed/moving/warped .nii.gz), a run folder evaluated by `llmed evaluate` (eval/pairs/<pair>/), or a report evaluation (samples.json, samples/<id>.nii.gz) or its run folder';
  if (!existsSync(root)) throw dataError(root, 'folder not found', hint);
  if (!isDirectory(root)) throw dataError(root, 'not a folder', hint);

  const missingHere = missingVolumes(root);
  if (missingHere.length === 0) return { root, layout: 'output', pairs: [pairIn(root, root, basename(root))] };
  // A report evaluation folder itself, or a report run folder whose eval/ is one. A link is looked at (and
  // refused with its name) rather than passed over, so a user is not told that nothing is there.
  if (existsSync(join(root, REPORT_SAMPLES_FILE)) || isLink(join(root, REPORT_SAMPLES_FILE))) return reportFolder(root, root, hint);
  const evalDir = join(root, RUN_EVAL_DIR);
  if (existsSync(join(evalDir, REPORT_SAMPLES_FILE)) || isLink(join(evalDir, REPORT_SAMPLES_FILE))) {
    if (isLink(evalDir)) throw dataError(evalDir, 'is a symbolic link; the viewer reads only regular folders inside the one it serves', hint);
    return reportFolder(root, evalDir, hint);
  }

  const pairsDir = join(root, RUN_PAIRS_DIR);
  if (isDirectory(pairsDir)) {
    const candidates = readdirSync(pairsDir).filter((n) => isDirectory(join(pairsDir, n))).sort(naturalCompare);
    const complete = candidates.filter((n) => missingVolumes(join(pairsDir, n)).length === 0);
    if (complete.length > 0) return { root, layout: 'run', pairs: complete.map((n) => pairIn(root, join(pairsDir, n), n)) };
    const detail = candidates.length === 0
      ? `${RUN_PAIRS_DIR.split(sep).join('/')}/ has no pair subfolders`
      : `no pair under ${RUN_PAIRS_DIR.split(sep).join('/')}/ is complete (${candidates[0]} lacks ${missingVolumes(join(pairsDir, candidates[0])).join(', ')})`;
    throw dataError(root, `nothing to view: ${detail}`, hint);
  }
  throw dataError(root, `nothing to view: missing ${missingHere.join(', ')} (and no ${RUN_PAIRS_DIR.split(sep).join('/')}/ subfolders, no ${REPORT_SAMPLES_FILE} of a report evaluation here or in ${RUN_EVAL_DIR}/)`, hint);
}
