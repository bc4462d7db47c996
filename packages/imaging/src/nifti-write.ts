/**
 * NIfTI writer (no npm package writes NIfTI): NIfTI-1 by default, NIfTI-2 on request, .nii or
 * .nii.gz by file name, little-endian by default (big-endian on request, mostly to test readers).
 *
 * - datatypes: float32, int16, uint8, int32. Default: `vol.datatype` when the values fit it, else
 *   float32 (see `pickDatatype`); float data written to an explicitly requested integer type is
 *   rounded to the nearest integer and clamped to the type's range, NaN becoming 0;
 * - both sform and qform are written from the affine (sform exact; qform is the rotation+zoom
 *   decomposition, exact unless the affine has shear), with codes `xformCode` (default 2, "aligned");
 * - a volume with `components > 1` is written as a 5-D image [nx, ny, nz, 1, C] (the NIfTI layout
 *   for vector images), intent VECTOR unless the volume or options say otherwise;
 * - the file is written to `<path>.tmp-<pid>` and renamed into place, so a crash or error never leaves
 *   a half-written file under the real name.
 *
 * `writeDisplacementField` stores a voxel-unit displacement field as the DISPVECT vector image in
 * world millimetres that llmed saves (see its doc).
 */
import { gzip, constants as zlibConstants } from 'node:zlib';
import { promisify } from 'node:util';
import { niftiError } from '@llmed/core/errors';
import { writeFileAtomic } from '@llmed/core/atomic';
import { affineToQuaternion, invert3, linear3, spacingFromAffine } from './affine.ts';
import { intentCode as intentCodeOf, readNifti, type NiftiVolume } from './nifti.ts';
import { voxelCount, type Volume, type VoxelArray } from './volume.ts';

const gzipAsync = promisify(gzip);

/** Datatypes the writer produces. */
export type NiftiWriteDatatype = 'float32' | 'int16' | 'uint8' | 'int32';

const WRITE_TYPES: Record<NiftiWriteDatatype, { code: number; bytes: number; min: number; max: number; integer: boolean }> = {
  float32: { code: 16, bytes: 4, min: -Infinity, max: Infinity, integer: false },
  int16: { code: 4, bytes: 2, min: -32768, max: 32767, integer: true },
  uint8: { code: 2, bytes: 1, min: 0, max: 255, integer: true },
  int32: { code: 8, bytes: 4, min: -2147483648, max: 2147483647, integer: true },
};

export interface WriteNiftiOptions {
  /** On-disk datatype; default `vol.datatype` when it is one of the writable types, else float32. */
  datatype?: NiftiWriteDatatype;
  /** Intent name ('DISPVECT', 'LABEL', ...) or code; default `vol.intent`, or VECTOR for C > 1. */
  intent?: string | number;
  /** Description (truncated to 79 ASCII characters); default `vol.description`. */
  description?: string;
  /** 'nifti1' (default) or 'nifti2'. */
  format?: 'nifti1' | 'nifti2';
  /** Byte order; default 'little'. */
  endianness?: 'little' | 'big';
  /** Compress? Default: when the path ends in `.gz`. */
  gzip?: boolean;
  /** gzip level 0-9 (default 1, nibabel's default: fast, nearly as small). */
  compressionLevel?: number;
  /** sform_code and qform_code (default 2 = aligned anatomical). */
  xformCode?: number;
}

/** True when every value is an integer inside the range of `type` (so writing it loses nothing). */
function fitsIntegerType(data: VoxelArray, type: NiftiWriteDatatype): boolean {
  const t = WRITE_TYPES[type];
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!(v >= t.min && v <= t.max) || Math.floor(v) !== v) return false;
  }
  return true;
}

/**
 * The datatype to write: the explicit option; else `vol.datatype` when writable — for an integer
 * type only if the values really fit it (a float image that still carries 'uint8' from its source
 * file is written as float32 rather than silently rounded); else from the array type.
 */
function pickDatatype(vol: Volume, opts: WriteNiftiOptions): NiftiWriteDatatype {
  if (opts.datatype) return opts.datatype;
  const dt = vol.datatype;
  if (dt && dt in WRITE_TYPES) {
    const t = dt as NiftiWriteDatatype;
    if (t === 'float32' || fitsIntegerType(vol.data, t)) return t;
    return 'float32';
  }
  if (vol.data instanceof Int32Array || vol.data instanceof Uint16Array) return 'int32';
  if (vol.data instanceof Int16Array || vol.data instanceof Int8Array) return 'int16';
  if (vol.data instanceof Uint8Array) return 'uint8';
  return 'float32';
}

/** Encode the voxel values as `type` in the requested byte order into `out` (after the header). */
function encodeData(data: VoxelArray, type: NiftiWriteDatatype, le: boolean, out: Buffer, offset: number): void {
  const t = WRITE_TYPES[type];
  const n = data.length;
  const dv = new DataView(out.buffer, out.byteOffset + offset, n * t.bytes);
  const conv = (v: number): number => {
    if (!t.integer) return v;
    if (v !== v) return 0;
    const r = Math.round(v);
    return r < t.min ? t.min : r > t.max ? t.max : r;
  };
  switch (type) {
    case 'float32':
      if (le) {
        new Float32Array(out.buffer, out.byteOffset + offset, n).set(data);
      } else for (let i = 0; i < n; i++) dv.setFloat32(4 * i, data[i], false);
      return;
    case 'int16':
      for (let i = 0; i < n; i++) dv.setInt16(2 * i, conv(data[i]), le);
      return;
    case 'uint8':
      for (let i = 0; i < n; i++) out[offset + i] = conv(data[i]);
      return;
    case 'int32':
      for (let i = 0; i < n; i++) dv.setInt32(4 * i, conv(data[i]), le);
      return;
  }
}

function putString(out: Buffer, at: number, len: number, s: string): void {
  // ASCII only, NUL-terminated within `len`.
  const ascii = s.replace(/[^\x20-\x7e]/g, '?').slice(0, len - 1);
  out.write(ascii, at, 'latin1');
}

/**
 * Encode a volume as NIfTI bytes (uncompressed). Exposed for tests and for callers that stream;
 * `writeNifti` is the usual entry point.
 */
export function encodeNifti(vol: Volume, opts: WriteNiftiOptions = {}, where = '<memory>'): Buffer {
  const type = pickDatatype(vol, opts);
  const t = WRITE_TYPES[type];
  if (!t) throw niftiError(where, `cannot write datatype '${String(opts.datatype)}'; writable: ${Object.keys(WRITE_TYPES).join(', ')}`);
  const nvox = voxelCount(vol);
  if (vol.data.length !== nvox * vol.components) {
    throw niftiError(where, `volume data has ${vol.data.length} values, dims ${vol.dims.join('x')} x ${vol.components} need ${nvox * vol.components}`);
  }
  if (!vol.affine || vol.affine.length !== 16 || vol.affine.some((v) => !Number.isFinite(v))) {
    throw niftiError(where, 'volume affine must be 16 finite numbers (row-major 4x4)');
  }
  const nifti2 = opts.format === 'nifti2';
  const le = (opts.endianness ?? 'little') === 'little';
  const C = vol.components;
  const dim = C > 1 ? [5, vol.dims[0], vol.dims[1], vol.dims[2], 1, C, 1, 1] : [3, vol.dims[0], vol.dims[1], vol.dims[2], 1, 1, 1, 1];
  if (!nifti2 && dim.some((d) => d > 32767)) {
    throw niftiError(where, `dimension ${Math.max(...dim)} exceeds NIfTI-1's limit of 32767; write NIfTI-2 (format: 'nifti2')`);
  }
  const intentRaw = opts.intent ?? vol.intent ?? (C > 1 ? 'VECTOR' : 'NONE');
  const intent = typeof intentRaw === 'number' ? intentRaw : intentCodeOf(intentRaw);
  const description = opts.description ?? vol.description ?? '';
  const xform = opts.xformCode ?? 2;
  const q = affineToQuaternion(vol.affine);
  const pixdim = [q.qfac, q.pixdim[0], q.pixdim[1], q.pixdim[2], 1, 1, 1, 1];

  const voxOffset = nifti2 ? 544 : 352;
  const out = Buffer.alloc(voxOffset + vol.data.length * t.bytes);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const A = vol.affine;
  if (!nifti2) {
    dv.setInt32(0, 348, le);
    out[38] = 0x72; // 'r' (regular), as other writers set it
    for (let d = 0; d < 8; d++) dv.setInt16(40 + 2 * d, dim[d], le);
    dv.setInt16(68, intent, le);
    dv.setInt16(70, t.code, le);
    dv.setInt16(72, t.bytes * 8, le);
    for (let d = 0; d < 8; d++) dv.setFloat32(76 + 4 * d, pixdim[d], le);
    dv.setFloat32(108, voxOffset, le);
    dv.setFloat32(112, 1, le); // scl_slope: values are stored unscaled
    dv.setFloat32(116, 0, le);
    out[123] = 2 | 8; // xyzt_units: mm, s
    putString(out, 148, 80, description);
    dv.setInt16(252, xform, le);
    dv.setInt16(254, xform, le);
    dv.setFloat32(256, q.b, le);
    dv.setFloat32(260, q.c, le);
    dv.setFloat32(264, q.d, le);
    dv.setFloat32(268, q.offset[0], le);
    dv.setFloat32(272, q.offset[1], le);
    dv.setFloat32(276, q.offset[2], le);
    for (let i = 0; i < 12; i++) dv.setFloat32(280 + 4 * i, A[i], le);
    putString(out, 328, 16, intentLabel(intent));
    out.write('n+1\0', 344, 'latin1');
  } else {
    dv.setInt32(0, 540, le);
    Buffer.from([0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a]).copy(out, 4);
    dv.setInt16(12, t.code, le);
    dv.setInt16(14, t.bytes * 8, le);
    for (let d = 0; d < 8; d++) dv.setBigInt64(16 + 8 * d, BigInt(dim[d]), le);
    for (let d = 0; d < 8; d++) dv.setFloat64(104 + 8 * d, pixdim[d], le);
    dv.setBigInt64(168, BigInt(voxOffset), le);
    dv.setFloat64(176, 1, le);
    dv.setFloat64(184, 0, le);
    putString(out, 240, 80, description);
    dv.setInt32(344, xform, le);
    dv.setInt32(348, xform, le);
    dv.setFloat64(352, q.b, le);
    dv.setFloat64(360, q.c, le);
    dv.setFloat64(368, q.d, le);
    dv.setFloat64(376, q.offset[0], le);
    dv.setFloat64(384, q.offset[1], le);
    dv.setFloat64(392, q.offset[2], le);
    for (let i = 0; i < 12; i++) dv.setFloat64(400 + 8 * i, A[i], le);
    dv.setInt32(500, 2 | 8, le);
    dv.setInt32(504, intent, le);
    putString(out, 508, 16, intentLabel(intent));
  }
  encodeData(vol.data, type, le, out, voxOffset);
  return out;
}

function intentLabel(code: number): string {
  return code === 1006 ? 'DISPVECT' : '';
}

/**
 * Write `vol` to `path` (.nii or .nii.gz) atomically: bytes go to `<path>.tmp-<pid>`, which is renamed
 * to `path` only once complete; on failure the temporary file is removed.
 */
export async function writeNifti(path: string, vol: Volume, opts: WriteNiftiOptions = {}): Promise<void> {
  const raw = encodeNifti(vol, opts, path);
  const compress = opts.gzip ?? path.endsWith('.gz');
  const bytes = compress
    ? await gzipAsync(raw, { level: opts.compressionLevel ?? 1, strategy: zlibConstants.Z_DEFAULT_STRATEGY })
    : raw;
  await writeFileAtomic(path, bytes, niftiError);
}

/**
 * Convert a displacement field in voxels of `ref`'s grid (channel c = displacement along NIfTI axis c,
 * the convention of llmed's networks and of voxelmorph) into world millimetres (RAS+): each vector
 * u is mapped to `M · u` where M is the 3x3 part of `ref.affine`. Returns a new Float32 array,
 * component-major like the input.
 */
export function fieldVoxelsToMm(field: ArrayLike<number>, ref: Pick<Volume, 'dims' | 'affine'>): Float32Array {
  return applyLinearToField(field, voxelCount(ref), linear3(ref.affine));
}

/** Inverse of `fieldVoxelsToMm`: world-mm displacement vectors to voxel units of `ref`'s grid. */
export function fieldMmToVoxels(field: ArrayLike<number>, ref: Pick<Volume, 'dims' | 'affine'>): Float32Array {
  return applyLinearToField(field, voxelCount(ref), invert3(linear3(ref.affine)));
}

function applyLinearToField(field: ArrayLike<number>, nvox: number, m: number[]): Float32Array {
  if (field.length !== 3 * nvox) {
    throw new Error(`displacement field has ${field.length} values, expected 3 x ${nvox}`);
  }
  const out = new Float32Array(3 * nvox);
  const [m0, m1, m2, m3, m4, m5, m6, m7, m8] = m;
  for (let i = 0; i < nvox; i++) {
    const u = field[i];
    const v = field[nvox + i];
    const w = field[2 * nvox + i];
    out[i] = m0 * u + m1 * v + m2 * w;
    out[nvox + i] = m3 * u + m4 * v + m5 * w;
    out[2 * nvox + i] = m6 * u + m7 * v + m8 * w;
  }
  return out;
}

/**
 * Save a displacement field the way llmed stores fields on disk: a NIfTI 5-D vector image
 * [nx, ny, nz, 1, 3], float32, intent DISPVECT (1006), values in world millimetres (RAS+), on the
 * grid (dims + affine) of `refVolume` (the fixed image).
 *
 * @param fieldVoxels displacement in voxels of the reference grid, component-major (3 x nvox):
 *   a Float32Array or a Volume with 3 components.
 */
export async function writeDisplacementField(
  path: string,
  fieldVoxels: ArrayLike<number> | Volume,
  refVolume: Pick<Volume, 'dims' | 'affine'>,
  opts: { description?: string; format?: 'nifti1' | 'nifti2' } = {},
): Promise<void> {
  const values = isVolume(fieldVoxels) ? fieldVoxels.data : fieldVoxels;
  if (isVolume(fieldVoxels)) {
    if (fieldVoxels.components !== 3) throw niftiError(path, `displacement field must have 3 components, got ${fieldVoxels.components}`);
    if (fieldVoxels.dims.some((d, i) => d !== refVolume.dims[i])) {
      throw niftiError(path, `displacement field grid ${fieldVoxels.dims.join('x')} differs from the reference grid ${refVolume.dims.join('x')}`);
    }
  }
  const nvox = voxelCount(refVolume);
  if (values.length !== 3 * nvox) {
    throw niftiError(path, `displacement field has ${values.length} values; the reference grid ${refVolume.dims.join('x')} needs 3 x ${nvox}`);
  }
  const mm = fieldVoxelsToMm(values, refVolume);
  const vol: Volume<Float32Array> = {
    data: mm,
    dims: [refVolume.dims[0], refVolume.dims[1], refVolume.dims[2]],
    components: 3,
    spacing: spacingFromAffine(refVolume.affine),
    affine: [...refVolume.affine],
    datatype: 'float32',
    intent: 'DISPVECT',
    description: opts.description ?? 'llmed displacement field (mm, RAS)',
  };
  await writeNifti(path, vol, { datatype: 'float32', intent: 1006, format: opts.format });
}

function isVolume(x: unknown): x is Volume {
  return typeof x === 'object' && x !== null && 'data' in x && 'dims' in x && 'components' in x;
}

/**
 * Read a displacement field saved by `writeDisplacementField` (or any 3-component NIfTI vector image
 * in world mm) and return it in voxels of its own grid: a 3-component Volume whose channel c is the
 * displacement along NIfTI axis c. Refuses files that are not 3-component.
 */
export async function readDisplacementField(path: string): Promise<NiftiVolume> {
  const vol = await readNifti(path);
  if (vol.components !== 3) {
    throw niftiError(path, `not a displacement field: ${vol.components} component(s), expected 3 (a [nx,ny,nz,1,3] vector image)`);
  }
  return { ...vol, data: fieldMmToVoxels(vol.data, vol) };
}
