/**
 * NIfTI-1 / NIfTI-2 reading (.nii and .nii.gz) behind a hardened wrapper around `nifti-reader-js`.
 *
 * nifti-reader-js parses the header fields; everything that can go wrong with a real or hostile file
 * is checked here before any large allocation:
 *
 * - gzip is detected by its magic bytes (not the file name) and inflated with Node's zlib *as a
 *   stream*: once the header has arrived, inflating stops at `vox_offset + voxels × bytes` (what the
 *   image needs), so trailing data (a 16³ image followed by gigabytes of zeros) is never inflated, and
 *   a header needing more than `maxBytes` (default 2 GiB) is refused before its data is inflated; memory
 *   is bounded by what the header needs, never by what the stream holds (a gzip bomb). A truncated or
 *   corrupt stream becomes `niftiError(file, 'truncated or corrupt gzip stream ...')`;
 * - `sizeof_hdr` (348 or 540, either byte order) and the magic string are checked; two-file
 *   `.hdr/.img` pairs and plain Analyze 7.5 files are refused with a clear message;
 * - dim[] and the datatype are validated, and `dims x bytes-per-voxel` is compared with the bytes the
 *   file really holds after `vox_offset` BEFORE the voxel array is allocated, so a crafted header
 *   claiming 30000^3 voxels fails at once instead of allocating gigabytes;
 * - big-endian files are byte-swapped; `scl_slope`/`scl_inter` are applied (slope 0 or non-finite
 *   means "no scaling", as in nibabel);
 * - the affine is sform when `sform_code > 0`, else the qform quaternion when `qform_code > 0`, else
 *   diag(pixdim) (nifti1.h "method 1"; note nibabel instead falls back to a centred, x-flipped
 *   Analyze affine for such files);
 * - NaN/Inf voxels are counted (`nonFinite`), never thrown on.
 *
 * Not handled: two-file .hdr/.img pairs, extensions (skipped), spatial units other than mm in
 * `xyzt_units` (values are taken as mm, as nibabel does), and RGB/complex datatypes.
 *
 * Values come back as a Float32Array (scaled); `header.datatype` keeps the on-disk type. Dimensions
 * 4..7 are folded into `components` (a 5-D vector image [nx,ny,nz,1,3] has 3 components; a 4-D
 * series of T frames has T), which matches the NIfTI storage order: component-major, i fastest.
 */
import { open, readFile } from 'node:fs/promises';
import { createReadStream, readFileSync } from 'node:fs';
import { constants as zlibConstants, createGunzip, gunzipSync } from 'node:zlib';
import * as nifti from 'nifti-reader-js';
import { isLlmedError, niftiError } from '@llmed/core/errors';
import { quaternionToAffine, spacingFromAffine, type Vec3 } from './affine.ts';
import type { Volume } from './volume.ts';

/** NIfTI datatype codes this reader accepts, with their names and sizes in bytes. */
export const NIFTI_DATATYPES: Readonly<Record<number, { name: string; bytes: number }>> = Object.freeze({
  2: { name: 'uint8', bytes: 1 },
  4: { name: 'int16', bytes: 2 },
  8: { name: 'int32', bytes: 4 },
  16: { name: 'float32', bytes: 4 },
  64: { name: 'float64', bytes: 8 },
  256: { name: 'int8', bytes: 1 },
  512: { name: 'uint16', bytes: 2 },
  768: { name: 'uint32', bytes: 4 },
  1024: { name: 'int64', bytes: 8 },
  1280: { name: 'uint64', bytes: 8 },
});

/** Names of NIfTI datatype codes that exist but are not supported (for error messages). */
const UNSUPPORTED_DATATYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'unknown (0)',
  1: 'binary (1 bit)',
  32: 'complex64',
  128: 'rgb24',
  1536: 'float128',
  1792: 'complex128',
  2048: 'complex256',
  2304: 'rgba32',
};

/**
 * What the values beyond the three spatial axes are: `frames` for a 4-D series (dim[4] > 1: time points,
 * echoes, separate label maps stacked), `components` for vector or multi-channel images (dim[5..7]).
 * Both are stored as `components` in a Volume; this is how to name them to a person.
 */
export function describeExtraDimensions(vol: { components: number; header?: { dim: number[] } }): { kind: 'none' | 'frames' | 'components'; count: number; text: string } {
  if (vol.components === 1) return { kind: 'none', count: 1, text: '' };
  const dim = vol.header?.dim;
  const frames = dim && dim[0] >= 4 ? dim[4] : 1;
  if (frames > 1 && frames === vol.components) return { kind: 'frames', count: frames, text: `${frames} frames (a 4-D series)` };
  return { kind: 'components', count: vol.components, text: `${vol.components} components${frames > 1 ? ` (${frames} frames × ${vol.components / frames} components)` : ''}` };
}

/** CIFTI-2 intents (NIFTI_INTENT_CONNECTIVITY_*, 3000–3099): matrices over brainordinates, not voxel grids. */
export function isCiftiIntent(code: number): boolean {
  return code >= 3000 && code < 3100;
}

/** NIfTI intent codes that llmed names (others are reported as `INTENT_<code>`). */
export const NIFTI_INTENTS: Readonly<Record<number, string>> = Object.freeze({
  0: 'NONE',
  2: 'CORREL',
  3: 'TTEST',
  5: 'ZSCORE',
  1001: 'ESTIMATE',
  1002: 'LABEL',
  1003: 'NEURONAME',
  1004: 'GENMATRIX',
  1005: 'SYMMATRIX',
  1006: 'DISPVECT',
  1007: 'VECTOR',
  1008: 'POINTSET',
  1009: 'TRIANGLE',
  1010: 'QUATERNION',
  1011: 'DIMLESS',
  2001: 'TIME_SERIES',
  2002: 'NODE_INDEX',
  2003: 'RGB_VECTOR',
  2004: 'RGBA_VECTOR',
  2005: 'SHAPE',
});

/** Intent name for a NIfTI intent code ('DISPVECT' for 1006, 'INTENT_<code>' when unnamed). */
export function intentName(code: number): string {
  return NIFTI_INTENTS[code] ?? `INTENT_${code}`;
}

/** Intent code for an intent name ('DISPVECT' -> 1006); accepts 'NIFTI_INTENT_' prefixes. */
export function intentCode(name: string): number {
  const n = name.toUpperCase().replace(/^NIFTI_INTENT_/, '');
  for (const [code, nm] of Object.entries(NIFTI_INTENTS)) if (nm === n) return Number(code);
  const m = /^INTENT_(\d+)$/.exec(n);
  if (m) return Number(m[1]);
  throw new Error(`unknown NIfTI intent '${name}'; known: ${Object.values(NIFTI_INTENTS).join(', ')}`);
}

/** Header facts kept alongside the voxel data. */
export interface NiftiHeaderInfo {
  format: 'NIfTI-1' | 'NIfTI-2';
  littleEndian: boolean;
  datatypeCode: number;
  /** On-disk datatype name ('uint8', 'int16', 'float32', ...). */
  datatype: string;
  bitpix: number;
  /** Raw dim[0..7]. */
  dim: number[];
  /** Raw pixdim[0..7] (pixdim[0] is qfac). */
  pixdim: number[];
  voxOffset: number;
  /** Raw scl_slope / scl_inter as stored. */
  sclSlope: number;
  sclInter: number;
  /** Whether scl_slope/scl_inter changed the values (false when slope is 0, NaN or (1, 0)). */
  scaled: boolean;
  qformCode: number;
  sformCode: number;
  /** Which header fields the affine came from. */
  affineSource: 'sform' | 'qform' | 'pixdim';
  intentCode: number;
  intentName: string;
  description: string;
  xyztUnits: number;
}

/** A volume read from a NIfTI file: Float32 voxel values plus header facts and the NaN/Inf count. */
export interface NiftiVolume extends Volume<Float32Array> {
  /** Path it was read from. */
  file: string;
  header: NiftiHeaderInfo;
  /** Number of NaN / +-Inf values in `data` (reported, not fixed: the intensity transforms handle them). */
  nonFinite: number;
}

export interface ReadNiftiOptions {
  /** Refuse to inflate a .nii.gz beyond this many bytes (default 2 GiB). */
  maxBytes?: number;
}

const DEFAULT_MAX_BYTES = 2 * 1024 ** 3;

/** Number of NaN, +Inf and -Inf values in an array. */
export function countNonFinite(data: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    // v - v is 0 for every finite number and NaN for NaN and +-Inf.
    if (v - v !== 0) n++;
  }
  return n;
}

/** Read a NIfTI-1/NIfTI-2 file (.nii or .nii.gz). All failures are `niftiError(file, ...)`. */
export async function readNifti(file: string, opts: ReadNiftiOptions = {}): Promise<NiftiVolume> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  let magic: Buffer;
  try {
    const fh = await open(file, 'r');
    try {
      magic = Buffer.alloc(2);
      await fh.read(magic, 0, 2, 0);
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw niftiError(file, `cannot read file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (isGzip(magic)) return parseNifti(await inflateStream(file, maxBytes), file);
  let raw: Buffer;
  try {
    raw = await readFile(file);
  } catch (e) {
    throw niftiError(file, `cannot read file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseNifti(raw, file);
}

/** Synchronous `readNifti`. */
export function readNiftiSync(file: string, opts: ReadNiftiOptions = {}): NiftiVolume {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (e) {
    throw niftiError(file, `cannot read file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const bytes = isGzip(raw) ? inflateSyncBounded(raw, file, opts.maxBytes ?? DEFAULT_MAX_BYTES) : raw;
  return parseNifti(bytes, file);
}

function isGzip(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

function gzipFailure(file: string, e: unknown, maxBytes: number) {
  const err = e as NodeJS.ErrnoException;
  if (isLlmedError(e)) return e;
  if (err.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
    return niftiError(file, `gzip stream inflates to more than ${formatBytes(maxBytes)} (limit); refusing to decompress`);
  }
  const what = err.code === 'Z_BUF_ERROR' ? 'truncated gzip stream (unexpected end of file)' : `corrupt gzip stream (${err.message})`;
  return niftiError(file, `${what}; the file was cut short or damaged`, 're-copy or re-export the file');
}

/**
 * The header facts of a NIfTI file from its first inflated bytes, or undefined until the header is complete
 * (a bad header throws its niftiError).
 */
function headerOf(head: Uint8Array, file: string): NiftiHeaderFacts | undefined {
  if (head.length < 4) return undefined;
  const det = detectHeader(head);
  const hdrSize = 'format' in det ? (det.format === 'NIfTI-1' ? 352 : 540) : 348;
  if (head.length < hdrSize) return undefined;
  return parseNiftiHeader(head, file);
}

function overLimit(file: string, facts: NiftiHeaderFacts, maxBytes: number) {
  return niftiError(file, `header declares ${facts.sizes.slice(0, facts.ndim).join('x')} ${facts.dt.name} voxels (${formatBytes(facts.needed - facts.voxOffset)}): the gzip stream inflates to more than ${formatBytes(maxBytes)} (limit); refusing to decompress`);
}

/** The error for a file shorter than its header says (`length`: bytes the file holds, header included). */
function shortFile(file: string, facts: NiftiHeaderFacts, length: number) {
  const available = length - facts.voxOffset;
  return niftiError(
    file,
    `header declares ${facts.sizes.slice(0, facts.ndim).join('x')} ${facts.dt.name} voxels (${formatBytes(facts.needed - facts.voxOffset)}) but the file holds only ${formatBytes(Math.max(0, available))} after vox_offset ${facts.voxOffset}: truncated file or corrupt header`,
  );
}

/**
 * Inflated chunks, kept until the header says how many bytes the image needs. A header needing more than
 * `maxBytes` switches to counting: chunks are dropped as they come, so the answer ("the file holds only
 * ..." or "inflates to more than the limit") costs no memory.
 */
class BoundedInflate {
  private chunks: Buffer[] = [];
  private total = 0;
  private facts: NiftiHeaderFacts | undefined;
  private counting = false;

  constructor(private readonly file: string, private readonly maxBytes: number) {}

  /** Add a chunk; true once everything the image needs has arrived (stop inflating). */
  add(chunk: Buffer): boolean {
    this.total += chunk.length;
    if (this.counting) {
      if (this.total > this.maxBytes) throw overLimit(this.file, this.facts!, this.maxBytes);
      return false;
    }
    this.chunks.push(chunk);
    if (this.facts === undefined) {
      if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
      this.facts = headerOf(this.chunks[0], this.file);
      if (this.facts && this.facts.needed > this.maxBytes) {
        this.counting = true;
        this.chunks = [];
        if (this.total > this.maxBytes) throw overLimit(this.file, this.facts, this.maxBytes);
      }
    }
    return this.done;
  }

  get done(): boolean {
    return !this.counting && this.facts !== undefined && this.total >= this.facts.needed;
  }

  /** The bytes up to what the image needs (parseNifti reports a short one as truncated). */
  bytes(): Buffer {
    if (this.counting) throw shortFile(this.file, this.facts!, this.total);
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.total);
    this.chunks = [];
    return this.facts !== undefined && all.length > this.facts.needed ? all.subarray(0, this.facts.needed) : all;
  }
}

const STREAM_CHUNK = 64 * 1024;

/** Inflate a .nii.gz as a stream (file → gunzip), stopping as soon as the image is complete. */
function inflateStream(file: string, maxBytes: number): Promise<Buffer> {
  const out = new BoundedInflate(file, maxBytes);
  return new Promise<Buffer>((resolvePromise, reject) => {
    const input = createReadStream(file, { highWaterMark: STREAM_CHUNK });
    const gunzip = createGunzip({ chunkSize: STREAM_CHUNK });
    let settled = false;
    const finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      input.destroy();
      gunzip.destroy();
      if (err) reject(err);
      else {
        try {
          resolvePromise(out.bytes());
        } catch (e) {
          reject(e);
        }
      }
    };
    gunzip.on('data', (chunk: Buffer) => {
      try {
        if (out.add(chunk)) finish();
      } catch (e) {
        finish(e);
      }
    });
    gunzip.on('end', () => finish());
    gunzip.on('error', (e) => finish(out.done ? undefined : gzipFailure(file, e, maxBytes)));
    input.on('error', (e: NodeJS.ErrnoException) => finish(niftiError(file, `cannot read file: ${e.code ?? e.message}`)));
    input.pipe(gunzip);
  });
}

/**
 * The synchronous twin of `inflateStream`. Node has no synchronous streaming inflate, so: the header comes
 * from a short prefix of the stream (flushed, not finished), then the stream is inflated with the output
 * capped at what the header needs; a stream holding more than that (trailing data) is inflated only up to
 * the compressed prefix that yields the image, found by bisection, so memory never exceeds the need.
 */
function inflateSyncBounded(raw: Buffer, file: string, maxBytes: number): Buffer {
  const partial = (length: number, maxOutputLength: number): Buffer =>
    gunzipSync(raw.subarray(0, length), { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength, chunkSize: STREAM_CHUNK });
  try {
    let facts: NiftiHeaderFacts | undefined;
    for (let length = 64; facts === undefined; length *= 2) {
      // 1032 is deflate's largest expansion per input byte: the prefix's output is bounded.
      const head = partial(Math.min(length, raw.length), Math.min(length, raw.length) * 1032 + 1024);
      facts = headerOf(head, file);
      if (facts === undefined && length >= raw.length) return head; // the stream ends inside the header
    }
    if (facts.needed > maxBytes) throw overLimit(file, facts, maxBytes);
    const needed = facts.needed;
    try {
      // One output buffer of the image's size (capped by what this many compressed bytes can hold).
      return gunzipSync(raw, { maxOutputLength: Math.max(needed, 1), chunkSize: Math.max(STREAM_CHUNK, Math.min(needed, raw.length * 1032 + 1024, 2 ** 30)) });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') throw e;
    }
    // More data than the image needs: the shortest prefix whose inflated output reaches `needed`.
    let lo = 0; // output(lo) < needed
    let hi = raw.length; // output(hi) >= needed
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      let enough: boolean;
      try {
        enough = partial(mid, needed).length >= needed;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') throw e;
        enough = true;
      }
      if (enough) hi = mid;
      else lo = mid;
    }
    return partial(hi, needed + 64 * 1032).subarray(0, needed);
  } catch (e) {
    throw gzipFailure(file, e, maxBytes);
  }
}

function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}

/** Which header layout and byte order `bytes` start with, from sizeof_hdr; null if neither. */
function detectHeader(bytes: Uint8Array): { format: 'NIfTI-1' | 'NIfTI-2'; littleEndian: boolean } | { sizeofHdr: number } {
  if (bytes.length < 4) return { sizeofHdr: NaN };
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const le of [true, false]) {
    const s = dv.getInt32(0, le);
    if (s === 348) return { format: 'NIfTI-1', littleEndian: le };
    if (s === 540) return { format: 'NIfTI-2', littleEndian: le };
  }
  return { sizeofHdr: dv.getInt32(0, true) };
}

function supportedDatatypesList(): string {
  return Object.entries(NIFTI_DATATYPES)
    .map(([code, t]) => `${t.name} (${code})`)
    .join(', ');
}

/** The header facts of a NIfTI file and the bytes its image needs (`vox_offset + voxels × bytes`). */
interface NiftiHeaderFacts {
  format: 'NIfTI-1' | 'NIfTI-2';
  littleEndian: boolean;
  h: nifti.NIFTI1 | nifti.NIFTI2;
  dim: number[];
  ndim: number;
  sizes: number[];
  components: number;
  typeCode: number;
  dt: { name: string; bytes: number };
  voxOffset: number;
  nvals: number;
  /** Bytes from the start of the file to the end of the image: everything the reader uses. */
  needed: number;
}

const SITK_CONVERT = `SimpleITK: python -c "import SimpleITK as s; s.WriteImage(s.ReadImage('IN'), 'out.nii.gz')"` ;

/** Another medical image format, recognised by its magic bytes or name, and how to convert it to NIfTI. */
function otherImageFormat(bytes: Uint8Array, file: string): { what: string; convert: string } | null {
  const text = (from: number, n: number) => String.fromCharCode(...bytes.subarray(from, from + n));
  const name = file.toLowerCase();
  const sitk = SITK_CONVERT.replace('IN', file);
  if (/\.mg[hz]$/.test(name)) {
    return { what: 'a FreeSurfer MGH/MGZ volume', convert: `mri_convert ${file} out.nii.gz (FreeSurfer), or nibabel: python -c "import nibabel as n; n.save(n.load('${file}'), 'out.nii.gz')"` };
  }
  if (text(0, 4) === 'NRRD') return { what: 'an NRRD volume', convert: sitk };
  if (/^(ObjectType|NDims)\s*=/.test(text(0, 16)) || /\.(mha|mhd)$/.test(name)) return { what: 'an ITK MetaImage (.mha/.mhd)', convert: sitk };
  if (bytes.length >= 132 && text(128, 4) === 'DICM') return { what: 'a DICOM file', convert: `dcm2niix -o OUTDIR <folder of the series' DICOM files>` };
  if (text(0, 6) === '\x93NUMPY' || /\.np[yz]$/.test(name) || (text(0, 4) === 'PK\x03\x04' && /\.npz$/.test(name))) {
    return { what: 'a NumPy array (no voxel geometry)', convert: `nibabel: python -c "import numpy as np, nibabel as n; n.save(n.Nifti1Image(np.load('${file}'), np.eye(4)), 'out.nii.gz')" — and give it the scan's real affine` };
  }
  return null;
}

/**
 * Parse and check the header at the start of `bytes` (only the header is needed); every problem is a
 * niftiError naming `file`. Nothing here allocates what the header asks for.
 */
function parseNiftiHeader(bytes: Uint8Array, file: string): NiftiHeaderFacts {
  const det = detectHeader(bytes);
  if (!('format' in det)) {
    const other = otherImageFormat(bytes, file);
    if (other) throw niftiError(file, `not a NIfTI file: this is ${other.what}`, `convert it to NIfTI first: ${other.convert}`);
    const s = det.sizeofHdr;
    throw niftiError(
      file,
      bytes.length < 348
        ? `not a NIfTI file: only ${bytes.length} bytes, a NIfTI-1 header alone is 348`
        : `not a NIfTI file: sizeof_hdr is ${s}, expected 348 (NIfTI-1) or 540 (NIfTI-2) in either byte order`,
    );
  }
  const { format, littleEndian } = det;
  const hdrSize = format === 'NIfTI-1' ? 348 : 540;
  if (bytes.length < hdrSize) {
    throw niftiError(file, `truncated ${format} header: file has ${bytes.length} bytes, the header needs ${hdrSize}`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  // Magic check (our own, so the message can say what was found).
  if (format === 'NIfTI-1') {
    const magic = String.fromCharCode(bytes[344], bytes[345], bytes[346]);
    const term = bytes[347];
    if (magic === 'ni1' && term === 0) {
      throw niftiError(file, `two-file NIfTI-1 (.hdr/.img, magic 'ni1') is not supported; convert it to a single .nii/.nii.gz`);
    }
    if (magic !== 'n+1' || term !== 0) {
      throw niftiError(
        file,
        `wrong magic ${JSON.stringify(String.fromCharCode(bytes[344], bytes[345], bytes[346], bytes[347]))} at byte 344, expected "n+1\\0" (an Analyze 7.5 file or a corrupt header)`,
      );
    }
  } else {
    const m = Array.from(bytes.subarray(4, 12));
    const want = [0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a];
    if (m[0] === 0x6e && m[1] === 0x69 && m[2] === 0x32) {
      throw niftiError(file, `two-file NIfTI-2 (.hdr/.img, magic 'ni2') is not supported; convert it to a single .nii/.nii.gz`);
    }
    if (m.some((v, i) => v !== want[i])) {
      throw niftiError(file, `wrong magic ${JSON.stringify(String.fromCharCode(...m))} at byte 4, expected "n+2\\0\\r\\n\\x1a\\n"`);
    }
  }

  // Field parsing by nifti-reader-js, on a copy of the header bytes only: with no room for
  // extensions it will not try to parse them (a malformed extension must not block the image).
  const headerCopy = bytes.slice(0, format === 'NIfTI-1' ? 352 : 540).buffer as ArrayBuffer;
  let h: nifti.NIFTI1 | nifti.NIFTI2;
  try {
    h = nifti.readHeader(headerCopy);
  } catch (e) {
    throw niftiError(file, `unreadable ${format} header: ${(e as Error).message}`);
  }

  // NIfTI-2 dims and vox_offset are int64; nifti-reader-js mis-assembles big-endian int64, so read
  // them here with BigInt.
  const dim = format === 'NIfTI-1' ? h.dims.map(Number) : Array.from({ length: 8 }, (_, d) => Number(dv.getBigInt64(16 + 8 * d, littleEndian)));
  const rawVoxOffset = format === 'NIfTI-1' ? Number(h.vox_offset) : Number(dv.getBigInt64(168, littleEndian));
  const ndim = dim[0];
  if (!Number.isInteger(ndim) || ndim < 1 || ndim > 7) {
    throw niftiError(file, `invalid dim[0] = ${ndim} (number of dimensions must be 1..7)`);
  }
  const sizes: number[] = [];
  for (let d = 1; d <= 7; d++) {
    const n = d <= ndim ? dim[d] : 1;
    if (!Number.isSafeInteger(n) || n < 1) {
      throw niftiError(file, `invalid dim[${d}] = ${dim[d]} (dimensions must be positive integers)`);
    }
    sizes.push(n);
  }
  const [nx, ny, nz] = sizes;
  const components = sizes[3] * sizes[4] * sizes[5] * sizes[6];
  if (isCiftiIntent(h.intent_code)) {
    throw niftiError(file, `a CIFTI-2 file (intent ${h.intent_code}): its axes are brainordinates and parcels held in a NIfTI-2 container, not a voxel grid (dims ${dim.slice(1, ndim + 1).join('×')})`, 'llmed registers volumes; read CIFTI with nibabel or the Connectome Workbench (wb_command -cifti-separate to get volume parts)');
  }

  const typeCode = h.datatypeCode;
  const dt = NIFTI_DATATYPES[typeCode];
  if (!dt) {
    const what = UNSUPPORTED_DATATYPE_NAMES[typeCode] ?? `unknown code ${typeCode}`;
    throw niftiError(file, `unsupported datatype ${what} (code ${typeCode}); supported: ${supportedDatatypesList()}`);
  }

  const voxOffset = rawVoxOffset;
  if (!Number.isInteger(voxOffset) || voxOffset < hdrSize) {
    throw niftiError(file, `invalid vox_offset ${rawVoxOffset} (must be an integer >= ${hdrSize})`);
  }

  // Size check BEFORE any allocation: what the header asks for vs what the file holds.
  const nvox = nx * ny * nz;
  const nvals = nvox * components;
  const needed = nvals * dt.bytes;
  return { format, littleEndian, h, dim, ndim, sizes, components, typeCode, dt, voxOffset, nvals, needed: voxOffset + needed };
}

/**
 * Parse an already-inflated NIfTI byte buffer. `file` is only used in error messages and the result.
 * Exposed so callers holding bytes (tests, uploads) get the same checks as `readNifti`.
 */
export function parseNifti(bytes: Uint8Array, file: string): NiftiVolume {
  const facts = parseNiftiHeader(bytes, file);
  const { format, littleEndian, h, dim, sizes, components, typeCode, dt, voxOffset, nvals, needed: end } = facts;
  const [nx, ny, nz] = sizes;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const needed = end - voxOffset;
  const available = bytes.length - voxOffset;
  if (!(needed <= available)) throw shortFile(file, facts, bytes.length);
  if (nvals > 2 ** 31 - 1) {
    throw niftiError(file, `image of ${nvals} values is too large for one typed array`);
  }

  // Decode to the native typed array (byte-swapped if the file is big-endian).
  const native = decodeNative(bytes, voxOffset, nvals, typeCode, dt.bytes, littleEndian);

  // Intensity scaling: slope 0 / NaN / Inf means "no scaling" (NIfTI spec and nibabel).
  const slope = Number(h.scl_slope);
  const inter = Number(h.scl_inter);
  const useSlope = Number.isFinite(slope) && slope !== 0;
  const s = useSlope ? slope : 1;
  const b = useSlope && Number.isFinite(inter) ? inter : 0;
  const scaled = s !== 1 || b !== 0;
  const data = toFloat32(native, s, b);

  // Affine: sform > qform > pixdim.
  const pixdim = h.pixDims.map(Number);
  let affine: number[];
  let affineSource: NiftiHeaderInfo['affineSource'];
  if (h.sform_code > 0) {
    affine = readSrow(dv, format, littleEndian);
    affineSource = 'sform';
  } else if (h.qform_code > 0) {
    affine = quaternionToAffine({
      b: h.quatern_b,
      c: h.quatern_c,
      d: h.quatern_d,
      offset: [h.qoffset_x, h.qoffset_y, h.qoffset_z],
      pixdim: [pixdim[1], pixdim[2], pixdim[3]],
      qfac: pixdim[0] < 0 ? -1 : 1,
    });
    affineSource = 'qform';
  } else {
    const px = (v: number) => (Number.isFinite(v) && v > 0 ? v : 1);
    affine = [px(pixdim[1]), 0, 0, 0, 0, px(pixdim[2]), 0, 0, 0, 0, px(pixdim[3]), 0, 0, 0, 0, 1];
    affineSource = 'pixdim';
  }
  if (affine.some((v) => !Number.isFinite(v))) {
    throw niftiError(file, `the ${affineSource} affine contains non-finite values`);
  }
  const spacing: Vec3 = spacingFromAffine(affine);
  if (spacing.some((v) => v === 0)) {
    throw niftiError(file, `the ${affineSource} affine is singular (a voxel axis has zero length)`);
  }
  // Columns of non-zero length can still be linearly dependent (a rank-2 sform): no orientation, no inverse.
  const [m00, m01, m02, , m10, m11, m12, , m20, m21, m22] = affine;
  const det = m00 * (m11 * m22 - m12 * m21) - m01 * (m10 * m22 - m12 * m20) + m02 * (m10 * m21 - m11 * m20);
  if (!(Math.abs(det) > 1e-6 * spacing[0] * spacing[1] * spacing[2])) {
    throw niftiError(file, `the ${affineSource} affine is singular: its voxel axes are linearly dependent (determinant ${det.toPrecision(3)}), so it gives no orientation`, 'fix the header (e.g. with nibabel or fslorient), or clear sform_code to use the qform');
  }

  const header: NiftiHeaderInfo = {
    format,
    littleEndian,
    datatypeCode: typeCode,
    datatype: dt.name,
    bitpix: h.numBitsPerVoxel,
    dim,
    pixdim,
    voxOffset,
    sclSlope: slope,
    sclInter: inter,
    scaled,
    qformCode: h.qform_code,
    sformCode: h.sform_code,
    affineSource,
    intentCode: h.intent_code,
    intentName: h.intent_name,
    description: h.description,
    xyztUnits: h.xyzt_units,
  };
  const isFloat = typeCode === 16 || typeCode === 64;
  const vol: NiftiVolume = {
    file,
    data,
    dims: [nx, ny, nz],
    components,
    spacing,
    affine,
    datatype: dt.name,
    intent: intentName(h.intent_code),
    header,
    nonFinite: isFloat || scaled ? countNonFinite(data) : 0,
  };
  if (h.description) vol.description = h.description;
  return vol;
}

function readSrow(dv: DataView, format: 'NIfTI-1' | 'NIfTI-2', le: boolean): number[] {
  const out = new Array<number>(16).fill(0);
  out[15] = 1;
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 4; c++) {
      out[4 * r + c] = format === 'NIfTI-1' ? dv.getFloat32(280 + (4 * r + c) * 4, le) : dv.getFloat64(400 + (4 * r + c) * 8, le);
    }
  }
  return out;
}

type NativeArray =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

const hostLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A typed-array view of the voxel bytes in native byte order. Zero-copy when the bytes are aligned
 * and already in host order; otherwise one copy (then an in-place byte swap for big-endian files).
 */
function decodeNative(bytes: Uint8Array, offset: number, n: number, code: number, size: number, le: boolean): NativeArray {
  const start = bytes.byteOffset + offset;
  let buf: ArrayBuffer;
  let byteOffset: number;
  if (size > 1 && (start % size !== 0 || le !== hostLittleEndian)) {
    const copy = Buffer.allocUnsafeSlow(n * size);
    copy.set(bytes.subarray(offset, offset + n * size));
    if (le !== hostLittleEndian) {
      if (size === 2) copy.swap16();
      else if (size === 4) copy.swap32();
      else if (size === 8) copy.swap64();
    }
    buf = copy.buffer as ArrayBuffer;
    byteOffset = copy.byteOffset;
  } else {
    buf = bytes.buffer as ArrayBuffer;
    byteOffset = start;
  }
  switch (code) {
    case 2:
      return new Uint8Array(buf, byteOffset, n);
    case 256:
      return new Int8Array(buf, byteOffset, n);
    case 4:
      return new Int16Array(buf, byteOffset, n);
    case 512:
      return new Uint16Array(buf, byteOffset, n);
    case 8:
      return new Int32Array(buf, byteOffset, n);
    case 768:
      return new Uint32Array(buf, byteOffset, n);
    case 16:
      return new Float32Array(buf, byteOffset, n);
    case 64:
      return new Float64Array(buf, byteOffset, n);
    case 1024:
      return new BigInt64Array(buf, byteOffset, n);
    case 1280:
      return new BigUint64Array(buf, byteOffset, n);
    default:
      throw new Error(`unreachable datatype ${code}`);
  }
}

/** Scaled Float32 values: `raw * slope + inter`. Reuses a float32 view when no scaling is needed. */
function toFloat32(native: NativeArray, slope: number, inter: number): Float32Array {
  const n = native.length;
  const identity = slope === 1 && inter === 0;
  if (native instanceof Float32Array && identity) return native;
  const out = new Float32Array(n);
  if (native instanceof BigInt64Array || native instanceof BigUint64Array) {
    for (let i = 0; i < n; i++) out[i] = Number(native[i]) * slope + inter;
    return out;
  }
  if (identity) {
    out.set(native);
    return out;
  }
  for (let i = 0; i < n; i++) out[i] = native[i] * slope + inter;
  return out;
}
