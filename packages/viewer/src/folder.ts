/**
 * What the viewer shows: the registration pairs found in a folder.
 *
 * Two layouts are accepted (both written by llmed):
 *
 * - an output folder of `llmed register`: `fixed`, `moving`, `warped` volumes (required), optional
 *   `fixed_labels`, `moving_labels`, `warped_labels`, `jacobian` (det J), `field` (DISPVECT) and
 *   `metrics.json` — one pair;
 * - a run folder evaluated by `llmed evaluate`: `eval/pairs/<pair>/`, each laid out like an output
 *   folder — several pairs, offered by a selector on the page.
 *
 * Volumes may be `.nii.gz` (what llmed writes) or plain `.nii`. The scan is cheap (readdir + stat),
 * so the server repeats it per page load: a run still being evaluated shows its new pairs on reload.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
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

export interface ViewerFolder {
  /** Absolute path of the served folder. */
  root: string;
  layout: 'output' | 'run';
  pairs: ViewerPair[];
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

function readMetrics(dir: string): unknown {
  const file = join(dir, 'metrics.json');
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    // A broken metrics file must not hide the images; the page shows the reason instead of a table.
    return { error: `metrics.json is not valid JSON: ${(e as Error).message}` };
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

/** Natural order, so pair_2 comes before pair_10. */
const naturalCompare = new Intl.Collator('en', { numeric: true }).compare;

/**
 * Scan `folder` for pairs. Throws `LlmedError('data')` naming the folder and what is missing when the
 * folder does not exist, or holds neither the three volumes of an output folder nor a complete
 * `eval/pairs/<pair>/` subfolder.
 */
export function scanViewerFolder(folder: string): ViewerFolder {
  const root = resolve(folder);
  const hint = 'point it at an output folder of `llmed register` (fixed/moving/warped .nii.gz) or a run folder evaluated by `llmed evaluate` (eval/pairs/<pair>/)';
  if (!existsSync(root)) throw dataError(root, 'folder not found', hint);
  if (!isDirectory(root)) throw dataError(root, 'not a folder', hint);

  const missingHere = missingVolumes(root);
  if (missingHere.length === 0) return { root, layout: 'output', pairs: [pairIn(root, root, basename(root))] };

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
  throw dataError(root, `nothing to view: missing ${missingHere.join(', ')} (and no ${RUN_PAIRS_DIR.split(sep).join('/')}/ subfolders)`, hint);
}
