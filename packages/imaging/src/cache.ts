/**
 * Prepared-volume cache: the hand-off format between TypeScript preprocessing and Python training.
 *
 * A prepared volume `<name>` in folder `dir` is two files:
 *
 * 1. `<name>.f32` (images, fields) or `<name>.i32` (label maps): raw voxel values, no header,
 *    **little-endian** IEEE float32 or two's-complement int32, in C order with shape
 *    `[components, nz, ny, nx]` — i.e. the NIfTI i axis fastest, then j, then k, then component
 *    (exactly llmed's in-memory `Volume` layout; torch `(C, K, J, I)`).
 *    Size = components·nz·ny·nx·4 bytes.
 * 2. `<name>.json`, the header:
 *
 *        {
 *          "format": "llmed-prepared-v1",
 *          "name": "<name>",
 *          "dataFile": "<name>.f32" | "<name>.i32",
 *          "dtype": "float32" | "int32",          // numpy: "<f4" | "<i4"
 *          "numpyDtype": "<f4" | "<i4",
 *          "byteOrder": "little",
 *          "shape": [C, nz, ny, nx],              // numpy/torch C-order shape of the data file
 *          "dims": [nx, ny, nz],                  // NIfTI order
 *          "components": C,
 *          "spacing": [dx, dy, dz],               // mm
 *          "affine": [16 numbers],                // row-major voxel->world (RAS+ mm), nibabel's img.affine
 *          "orientation": "RAS",
 *          "bytes": <size of the data file>,
 *          "source": { "path": "...", "sha256": "<hex of the source file's bytes>" } | null,
 *          "preprocessing": [ ...ops as applied ] or any JSON the preparer records (reorient, resample, intensity ops with stats),
 *          "meta": { ... }                        // free-form
 *        }
 *
 * Python side:
 *
 *     h = json.load(open(f"{dir}/{name}.json"))
 *     x = numpy.memmap(f"{dir}/{h['dataFile']}", dtype=h["numpyDtype"], mode="r", shape=tuple(h["shape"]))
 *
 * Both files are written to `<file>.tmp-<pid>` and renamed; the data file first, the header last, so
 * a header present on disk always describes a complete data file.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { dataError } from '@llmed/core/errors';
import { writeFileAtomic } from '@llmed/core/atomic';
import { axisCodes } from './orientation.ts';
import { isIntegerArray, voxelCount, type Volume, type Vec3 } from './volume.ts';
import { spacingFromAffine } from './affine.ts';

export const PREPARED_FORMAT = 'llmed-prepared-v1';

export interface PreparedHeader {
  format: typeof PREPARED_FORMAT;
  name: string;
  dataFile: string;
  dtype: 'float32' | 'int32';
  numpyDtype: '<f4' | '<i4';
  byteOrder: 'little';
  shape: [number, number, number, number];
  dims: Vec3;
  components: number;
  spacing: Vec3;
  affine: number[];
  orientation: string;
  bytes: number;
  source: { path: string; sha256: string } | null;
  preprocessing: unknown;
  meta?: Record<string, unknown>;
}

export interface PreparedMeta {
  /** The file the volume was prepared from; its SHA-256 is recorded. */
  source?: string;
  /** Preprocessing as applied (reorient, resample, intensity ops with their stats ...): a list of ops... */
  ops?: unknown[];
  /** ...or any JSON description; stored as the header's `preprocessing` (takes precedence over `ops`). */
  preprocessing?: unknown;
  /** Force the stored type; default int32 for integer arrays (labels), float32 otherwise. */
  dtype?: 'float32' | 'int32';
  /** Anything else worth keeping with the volume. */
  meta?: Record<string, unknown>;
}

/** SHA-256 (hex) of a file's bytes, streamed. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve());
  });
  return hash.digest('hex');
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.')) {
    throw dataError(name, `invalid prepared-volume name '${name}': use letters, digits, '.', '_' and '-' only (no path separators)`);
  }
}

const hostLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Little-endian bytes of a Float32Array / Int32Array (a view when the host is little-endian). */
function littleEndianBytes(a: Float32Array | Int32Array): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (hostLittleEndian) return view;
  const copy = Buffer.from(view);
  copy.swap32();
  return copy;
}

/**
 * Write a prepared volume (`<name>.f32|.i32` + `<name>.json`, format in the module doc) into `dir`
 * (created if missing). Returns the header written.
 */
export async function writePreparedVolume(dir: string, name: string, vol: Volume, meta: PreparedMeta = {}): Promise<PreparedHeader> {
  checkName(name);
  const nvox = voxelCount(vol);
  if (vol.data.length !== nvox * vol.components) {
    throw dataError(name, `volume data has ${vol.data.length} values, dims ${vol.dims.join('x')} x ${vol.components} need ${nvox * vol.components}`);
  }
  const dtype = meta.dtype ?? (isIntegerArray(vol.data) ? 'int32' : 'float32');
  let arr: Float32Array | Int32Array;
  if (dtype === 'int32') {
    if (vol.data instanceof Int32Array) arr = vol.data;
    else {
      arr = new Int32Array(vol.data.length);
      for (let i = 0; i < arr.length; i++) {
        const v = vol.data[i];
        if (!Number.isInteger(v)) throw dataError(name, `cannot store value ${v} at index ${i} as int32 labels (not an integer)`);
        arr[i] = v;
      }
    }
  } else {
    arr = vol.data instanceof Float32Array ? vol.data : Float32Array.from(vol.data);
  }
  await mkdir(dir, { recursive: true });
  const dataFile = `${name}.${dtype === 'int32' ? 'i32' : 'f32'}`;
  const header: PreparedHeader = {
    format: PREPARED_FORMAT,
    name,
    dataFile,
    dtype,
    numpyDtype: dtype === 'int32' ? '<i4' : '<f4',
    byteOrder: 'little',
    shape: [vol.components, vol.dims[2], vol.dims[1], vol.dims[0]],
    dims: [vol.dims[0], vol.dims[1], vol.dims[2]],
    components: vol.components,
    spacing: spacingFromAffine(vol.affine),
    affine: [...vol.affine],
    orientation: axisCodes(vol.affine),
    bytes: arr.byteLength,
    source: meta.source ? { path: path.resolve(meta.source), sha256: await sha256File(meta.source) } : null,
    preprocessing: meta.preprocessing ?? meta.ops ?? [],
  };
  if (meta.meta) header.meta = meta.meta;
  await writeFileAtomic(path.join(dir, dataFile), littleEndianBytes(arr), dataError);
  await writeFileAtomic(path.join(dir, `${name}.json`), JSON.stringify(header, null, 2) + '\n', dataError);
  return header;
}

/**
 * Read a prepared volume back: validates the header and that the data file has exactly the bytes
 * the header promises (`dataError` naming the file otherwise).
 */
export async function readPreparedVolume(dir: string, name: string): Promise<{ volume: Volume<Float32Array | Int32Array>; header: PreparedHeader }> {
  checkName(name);
  const headerFile = path.join(dir, `${name}.json`);
  let h: PreparedHeader;
  try {
    h = JSON.parse(await readFile(headerFile, 'utf8')) as PreparedHeader;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw dataError(headerFile, err.code ? `cannot read prepared header: ${err.code}` : `invalid prepared header JSON: ${err.message}`);
  }
  if (h.format !== PREPARED_FORMAT) throw dataError(headerFile, `not a prepared-volume header (format ${JSON.stringify(h.format)}, expected ${PREPARED_FORMAT})`);
  if (h.dtype !== 'float32' && h.dtype !== 'int32') throw dataError(headerFile, `unsupported dtype ${JSON.stringify(h.dtype)}; expected float32 or int32`);
  const okDims = Array.isArray(h.dims) && h.dims.length === 3 && h.dims.every((d) => Number.isInteger(d) && d > 0);
  if (!okDims || !Number.isInteger(h.components) || h.components < 1 || !Array.isArray(h.affine) || h.affine.length !== 16) {
    throw dataError(headerFile, 'prepared header lacks valid dims / components / affine');
  }
  if (path.basename(h.dataFile) !== h.dataFile) throw dataError(headerFile, `dataFile must be a plain file name, got '${h.dataFile}'`);
  const dataPath = path.join(dir, h.dataFile);
  const n = h.dims[0] * h.dims[1] * h.dims[2] * h.components;
  let buf: Buffer;
  try {
    buf = await readFile(dataPath);
  } catch (e) {
    throw dataError(dataPath, `cannot read prepared data: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (buf.byteLength !== n * 4) {
    throw dataError(dataPath, `prepared data has ${buf.byteLength} bytes; header ${headerFile} promises ${n * 4} (${h.dims.join('x')} x ${h.components} x 4)`);
  }
  // Copy into a fresh, aligned buffer (Buffer pools may misalign), then fix byte order if needed.
  const aligned = new ArrayBuffer(buf.byteLength);
  const bytes = new Uint8Array(aligned);
  bytes.set(buf);
  if (!hostLittleEndian) Buffer.from(aligned).swap32();
  const data = h.dtype === 'int32' ? new Int32Array(aligned) : new Float32Array(aligned);
  const volume: Volume<Float32Array | Int32Array> = {
    data,
    dims: [h.dims[0], h.dims[1], h.dims[2]],
    components: h.components,
    spacing: spacingFromAffine(h.affine),
    affine: [...h.affine],
    datatype: h.dtype,
  };
  return { volume, header: h };
}
