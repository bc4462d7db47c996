/**
 * An export folder (written by `llmed export`, bridge/python/llmed/export.py): model.onnx (+ model.onnx.data
 * above 2 GB) and manifest.json, which says everything inference needs to see a pair the way training did —
 * preprocessing, grids, the warp convention, labels — and where the weights came from.
 *
 * `openExport` validates the manifest against itself and the files on disk before any session is made:
 * a missing or truncated model file, a hash that does not match (a corrupted copy), input shapes that do
 * not follow from the manifest's grids. Each is one error naming the file.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, readFileSync, realpathSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { jsonProblem, LlmedError } from '@llmed/core';
import type { PreprocessSettings } from '@llmed/imaging';

export const EXPORT_FORMAT = 'llmed-export-v1';

export interface ExportedTensor { name: string; shape: (number | string)[]; dtype: string }

export interface ExportManifest {
  format: typeof EXPORT_FORMAT;
  createdAt: string;
  experiment: string;
  method?: string;
  description?: string;
  model: {
    file: string;
    bytes: number;
    sha256: string;
    externalData: { file: string; bytes: number; sha256: string } | null;
    opset: number;
    dtype: 'float32';
    inputs: ExportedTensor[];
    outputs: ExportedTensor[];
    parameters: number;
    loraLayersMerged: number;
    cascadeSteps: number;
    [key: string]: unknown;
  };
  /** Network input grid, NIfTI order (i, j, k). */
  input: { shape: [number, number, number]; channels: number };
  /** Grid of the preprocessed images (= the fixed grid the field lives on). */
  prepared: { shape: [number, number, number]; title?: string };
  data: {
    title?: string;
    modality?: { moving?: string; fixed?: string };
    preprocess: PreprocessSettings;
    labels: number[];
    labelNames: Record<string, string>;
  };
  /** Present when the network runs at a coarser grid than the prepared one (LLM-Morph's half resolution). */
  resize: null | {
    images: { from: number[]; to: number[] };
    field: { from: number[]; to: number[]; scale: number[] };
  };
  warp: { alignCorners: boolean; images: string; labels: string; grid: number[]; [key: string]: unknown };
  evaluate?: { metrics?: string[]; pairs?: number; [key: string]: unknown } | null;
  source: { run: string; runName?: string; checkpoint: string; step: number; weights: { file: string; sha256: string }; preparedDir?: string; [key: string]: unknown };
  parity: { maxAbsFieldDiffVoxels: number; dice: { torch: number | null; onnxruntime: number | null }; passed: boolean; [key: string]: unknown };
}

export interface OpenedExport {
  /** The export folder. */
  dir: string;
  manifestFile: string;
  modelFile: string;
  manifest: ExportManifest;
}

const exportError = (where: string, message: string, hint?: string) => new LlmedError('checkpoint', message, { where, hint });

function isGrid(x: unknown): x is [number, number, number] {
  return Array.isArray(x) && x.length === 3 && x.every((n) => Number.isInteger(n) && n > 0);
}

/** The most voxels a grid may have: its displacement field (3 × float32) must fit one typed array. */
export const MAX_GRID_VOXELS = Math.floor((2 ** 31 - 1) / 3);
/** manifest.json is a few kB; anything far larger is not one (and is not read into memory). */
const MAX_MANIFEST_BYTES = 16 * 2 ** 20;

/**
 * `dir/name` as a file the manifest may name: a plain name (no folders, no `..`) of a regular file that is
 * inside the export folder. A symlink is followed only when it stays inside the folder and ends at a
 * regular file, so a manifest cannot make llmed read /dev/zero (which never ends) or a file elsewhere.
 */
export function confinedFile(dir: string, name: unknown, field: string, manifestFile: string): { file: string; stat: Stats } {
  if (typeof name !== 'string' || !name || name === '.' || name === '..' || basename(name) !== name || name.includes('\0')) {
    throw exportError(manifestFile, `${field}: must be a plain file name inside the export folder, got ${JSON.stringify(name)}`, 'the manifest was edited or damaged; export the run again');
  }
  const file = join(dir, name);
  let st: Stats;
  try { st = lstatSync(file); } catch {
    throw exportError(file, 'the model file named by manifest.json is missing', 'copy the whole export folder, or export the run again');
  }
  if (st.isSymbolicLink()) {
    let real: string;
    try { real = realpathSync(file); } catch { throw exportError(file, 'is a dangling symbolic link', 'copy the whole export folder, or export the run again'); }
    const inside = realpathSync(dir);
    if (!real.startsWith(inside + sep)) throw exportError(file, `is a symbolic link out of the export folder (to ${real}); refusing to read it`, 'copy the real files into the export folder');
    st = statSync(real);
  }
  if (!st.isFile()) throw exportError(file, 'is not a regular file (a device, fifo or folder); refusing to read it', 'copy the whole export folder, or export the run again');
  return { file, stat: st };
}

/**
 * The export folder a user meant: the folder itself, its manifest.json or model.onnx, or a run folder
 * (whose export/ subfolder is used).
 */
export function locateExport(path: string): string {
  const p = resolve(path);
  if (!existsSync(p)) throw exportError(p, 'no such export folder or file', 'pass the folder written by `llmed export <run>` (runs/<experiment>/<stamp>/export)');
  if (statSync(p).isFile()) return dirname(p);
  if (existsSync(join(p, 'manifest.json'))) return p;
  if (existsSync(join(p, 'export', 'manifest.json'))) return join(p, 'export');
  throw exportError(p, 'not an export folder: it has no manifest.json (nor export/manifest.json)', `export the run first: llmed export ${path}`);
}

/** SHA-256 of a file; with `bytes`, only its first `bytes` bytes are ever read (the size a manifest declares). */
export async function sha256OfFile(file: string, bytes?: number): Promise<string> {
  const hash = createHash('sha256');
  if (bytes === 0) return hash.digest('hex');
  for await (const chunk of createReadStream(file, bytes === undefined ? {} : { start: 0, end: bytes - 1 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Read and check an export folder. `verifyHashes` (default true) re-hashes model.onnx (and its data file). */
export async function openExport(path: string, opts: { verifyHashes?: boolean } = {}): Promise<OpenedExport> {
  const dir = locateExport(path);
  const manifestFile = join(dir, 'manifest.json');
  const { stat: manifestStat } = confinedFile(dir, 'manifest.json', 'manifest.json', manifestFile);
  if (manifestStat.size > MAX_MANIFEST_BYTES) throw exportError(manifestFile, `is ${manifestStat.size} bytes; a manifest is a few kB (at most ${MAX_MANIFEST_BYTES})`, 'export the run again');
  let m: ExportManifest;
  try {
    m = JSON.parse(readFileSync(manifestFile, 'utf8')) as ExportManifest;
  } catch (e) {
    throw exportError(manifestFile, `cannot read the manifest: ${(e as Error).message}`);
  }
  const problem = jsonProblem(m);
  if (problem) throw exportError(`${manifestFile} ${problem.path}`, problem.message, 'the manifest and the model were not written together; export the run again');
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw exportError(manifestFile, 'is not a JSON object', 'export the run again');
  const bad = (field: string, problem: string) => exportError(manifestFile, `${field}: ${problem}`, 'the manifest and the model were not written together; export the run again');
  if (m.format !== EXPORT_FORMAT) throw bad('format', `is ${JSON.stringify(m.format)}, expected ${EXPORT_FORMAT}`);
  if (!m.model || typeof m.model.file !== 'string' || basename(m.model.file) !== m.model.file) throw bad('model.file', 'missing or not a plain file name');
  if (!isGrid(m.input?.shape)) throw bad('input.shape', `must be three positive integers, got ${JSON.stringify(m.input?.shape)}`);
  if (!isGrid(m.prepared?.shape)) throw bad('prepared.shape', `must be three positive integers, got ${JSON.stringify(m.prepared?.shape)}`);
  if (!m.data?.preprocess || !isGrid(m.data.preprocess.shape)) throw bad('data.preprocess.shape', 'missing');
  for (const [field, grid] of [['input.shape', m.input.shape], ['prepared.shape', m.prepared.shape]] as const) {
    const voxels = grid[0] * grid[1] * grid[2];
    if (voxels > MAX_GRID_VOXELS) throw bad(field, `${grid.join('×')} is ${voxels.toExponential(2)} voxels; llmed holds at most ${MAX_GRID_VOXELS} per grid (a displacement field is 3 × float32 in one typed array)`);
  }
  if (m.data.preprocess.shape.some((n, c) => n !== m.prepared.shape[c])) {
    throw bad('data.preprocess.shape', `[${m.data.preprocess.shape.join(', ')}] differs from prepared.shape [${m.prepared.shape.join(', ')}]`);
  }
  const resized = m.input.shape.some((n, c) => n !== m.prepared.shape[c]);
  if (resized !== Boolean(m.resize)) {
    throw bad('resize', resized ? `the network grid [${m.input.shape}] differs from the prepared grid [${m.prepared.shape}] but the manifest has no resize block` : 'present although the network runs at the prepared grid');
  }
  const channels = m.input.channels ?? 1;
  const [ni, nj, nk] = m.input.shape;
  const want = [1, channels, nk, nj, ni];
  const names = ['moving', 'fixed'];
  if (!Array.isArray(m.model.inputs) || m.model.inputs.length !== 2) throw bad('model.inputs', 'must list the two inputs moving and fixed');
  m.model.inputs.forEach((t, idx) => {
    if (t.name !== names[idx]) throw bad(`model.inputs[${idx}].name`, `is ${JSON.stringify(t.name)}, expected ${names[idx]}`);
    if (t.shape.length !== 5 || t.shape.some((d, c) => d !== want[c])) throw bad(`model.inputs[${idx}].shape`, `is [${t.shape.join(', ')}], the input grid [${m.input.shape}] needs [${want.join(', ')}]`);
  });
  const out = m.model.outputs?.[0];
  if (!out || out.name !== 'field' || out.shape.length !== 5 || out.shape.some((d, c) => d !== [1, 3, nk, nj, ni][c])) {
    throw bad('model.outputs[0]', `must be field [1, 3, ${nk}, ${nj}, ${ni}], got ${JSON.stringify(out)}`);
  }

  const entries: [string, unknown, { bytes: number; sha256: string }][] = [['model.file', m.model.file, m.model]];
  if (m.model.externalData) entries.push(['model.externalData.file', m.model.externalData.file, m.model.externalData]);
  let modelFile = '';
  for (const [field, name, expect] of entries) {
    const { file, stat } = confinedFile(dir, name, field, manifestFile);
    if (field === 'model.file') modelFile = file;
    if (!Number.isSafeInteger(expect.bytes) || expect.bytes < 0) throw bad(field.replace(/\.file$/, '.bytes'), `must be a byte count, got ${JSON.stringify(expect.bytes)}`);
    const size = stat.size;
    if (size !== expect.bytes) throw exportError(file, `is ${size} bytes, manifest.json says ${expect.bytes}: truncated or replaced`, 'copy the export folder again, or export the run again');
    if (opts.verifyHashes !== false) {
      const sha = await sha256OfFile(file, expect.bytes);
      if (sha !== expect.sha256) throw exportError(file, `SHA-256 ${sha.slice(0, 12)}… does not match manifest.json (${expect.sha256.slice(0, 12)}…): corrupted or replaced`, 'export the run again');
    }
  }
  return { dir, manifestFile, modelFile, manifest: m };
}
