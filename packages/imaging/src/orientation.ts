/**
 * Orientation: which anatomical direction each voxel axis points to, and exact reorientation.
 *
 * An axis code is three letters, one per voxel axis i, j, k, naming the world direction that axis
 * increases towards: R/L (world x+ / x-), A/P (y+ / y-), S/I (z+ / z-). 'RAS' is the canonical
 * (nibabel `as_closest_canonical`) orientation; FreeSurfer conformed volumes are 'LIA'. Codes are
 * computed like nibabel's `aff2axcodes`: each voxel axis is matched to the world axis its direction
 * vector is most aligned with (largest entries first, so oblique affines still get distinct axes).
 *
 * Reorientation only permutes and flips voxel axes — no interpolation, every value kept exactly —
 * and updates the affine so every voxel keeps its world position.
 */
import { dataError } from '@llmed/core/errors';
import { multiplyAffine } from './affine.ts';
import { allocLike, voxelCount, withData, type Volume, type VoxelArray } from './volume.ts';

/** For each voxel axis: the world axis (0 = x/R-L, 1 = y/A-P, 2 = z/S-I) and direction (+1 / -1). */
export type AxisOrientation = Array<{ worldAxis: 0 | 1 | 2; sign: 1 | -1 }>;

const LETTERS: ReadonlyArray<[string, string]> = [
  ['R', 'L'],
  ['A', 'P'],
  ['S', 'I'],
];

/** Per-voxel-axis world axis and sign of an affine (nibabel's `io_orientation`, greedy variant). */
export function axisOrientation(affine: readonly number[]): AxisOrientation {
  // Normalised direction vectors (columns) so voxel size does not bias the matching.
  const cols: number[][] = [0, 1, 2].map((c) => {
    const v = [affine[c], affine[4 + c], affine[8 + c]];
    const n = Math.hypot(v[0], v[1], v[2]) || 1;
    return v.map((x) => x / n);
  });
  const result: AxisOrientation = [];
  const usedRow = [false, false, false];
  const usedCol = [false, false, false];
  for (let step = 0; step < 3; step++) {
    let best = -1;
    let br = 0;
    let bc = 0;
    for (let c = 0; c < 3; c++) {
      if (usedCol[c]) continue;
      for (let r = 0; r < 3; r++) {
        if (usedRow[r]) continue;
        const a = Math.abs(cols[c][r]);
        if (a > best) {
          best = a;
          br = r;
          bc = c;
        }
      }
    }
    usedRow[br] = true;
    usedCol[bc] = true;
    result[bc] = { worldAxis: br as 0 | 1 | 2, sign: cols[bc][br] < 0 ? -1 : 1 };
  }
  return result;
}

/** Three-letter orientation code of an affine, e.g. 'RAS', 'LIA', 'LPS'. */
export function axisCodes(affine: readonly number[]): string {
  return axisOrientation(affine)
    .map((o) => LETTERS[o.worldAxis][o.sign > 0 ? 0 : 1])
    .join('');
}

/** Parse and validate an orientation code ('RAS', 'lpi', ...) into per-axis world axis and sign. */
export function parseAxisCodes(code: string): AxisOrientation {
  const up = code.toUpperCase();
  const out: AxisOrientation = [];
  if (up.length === 3) {
    for (const ch of up) {
      const w = LETTERS.findIndex(([p, n]) => p === ch || n === ch);
      if (w < 0) break;
      out.push({ worldAxis: w as 0 | 1 | 2, sign: LETTERS[w][0] === ch ? 1 : -1 });
    }
  }
  if (out.length !== 3 || new Set(out.map((o) => o.worldAxis)).size !== 3) {
    throw dataError('orientation', `invalid orientation code '${code}': use one letter from each of R/L, A/P, S/I (e.g. 'RAS', 'LPS')`);
  }
  return out;
}

export interface ReorientOptions {
  /**
   * How to treat components when `vol.components === 3`:
   * - 'voxel': the volume is a displacement/vector field in voxel units along the voxel axes, so its
   *   components are permuted and negated with the axes;
   * - 'world': vectors are in world coordinates (e.g. a DISPVECT field as saved, in mm), unchanged;
   * - 'channels': independent channels, unchanged.
   * Default: 'world' when `vol.intent` is 'DISPVECT', else 'channels'.
   */
  vectors?: 'voxel' | 'world' | 'channels';
}

/** How a reorientation maps output axes to input axes. */
export interface AxisPermutation {
  /** `source[a]` = the input voxel axis that becomes output axis a. */
  source: [number, number, number];
  /** `flip[a]` = whether output axis a runs opposite to its input axis. */
  flip: [boolean, boolean, boolean];
}

/** The permutation/flip that takes an affine to orientation `target`. */
export function reorientPermutation(affine: readonly number[], target: string): AxisPermutation {
  const from = axisOrientation(affine);
  const to = parseAxisCodes(target);
  const source: [number, number, number] = [0, 0, 0];
  const flip: [boolean, boolean, boolean] = [false, false, false];
  for (let a = 0; a < 3; a++) {
    const c = from.findIndex((o) => o.worldAxis === to[a].worldAxis);
    source[a] = c;
    flip[a] = from[c].sign !== to[a].sign;
  }
  return { source, flip };
}

/**
 * Reorient a volume to the orientation `target` (default 'RAS') by permuting and flipping voxel axes.
 * Exact (no interpolation); works for any typed array (images, labels) and any number of components.
 * The affine is updated so each voxel keeps its world position. Returns the input unchanged (same
 * object) when it already has the target orientation.
 */
export function reorientToCanonical<T extends VoxelArray>(vol: Volume<T>, target = 'RAS', opts: ReorientOptions = {}): Volume<T> {
  const { source, flip } = reorientPermutation(vol.affine, target);
  if (source[0] === 0 && source[1] === 1 && source[2] === 2 && !flip[0] && !flip[1] && !flip[2]) return vol;
  return permuteFlipAxes(vol, source, flip, opts);
}

/** Alias of `reorientToCanonical` for non-canonical targets ('LPS', 'LIA', ...). */
export const reorient = reorientToCanonical;

/**
 * Output axis a = input axis `source[a]`, reversed where `flip[a]`. The new affine is
 * `A · T`, where T maps output voxel indices to input voxel indices.
 */
export function permuteFlipAxes<T extends VoxelArray>(
  vol: Volume<T>,
  source: readonly number[],
  flip: readonly boolean[],
  opts: ReorientOptions = {},
): Volume<T> {
  if ([...source].sort().join() !== '0,1,2') throw new Error(`permuteFlipAxes: source must be a permutation of 0,1,2, got ${source.join(',')}`);
  const inDims = vol.dims;
  const outDims: [number, number, number] = [inDims[source[0]], inDims[source[1]], inDims[source[2]]];
  const inStride = [1, inDims[0], inDims[0] * inDims[1]];

  // Start offset and per-output-axis step in the input array.
  let start = 0;
  const step = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    const c = source[a];
    if (flip[a]) {
      start += (inDims[c] - 1) * inStride[c];
      step[a] = -inStride[c];
    } else step[a] = inStride[c];
  }

  const nvox = voxelCount(vol);
  const C = vol.components;
  const src = vol.data;
  const out = allocLike(src, src.length);
  const [nx, ny, nz] = outDims;
  const [sx, sy, sz] = step;
  for (let comp = 0; comp < C; comp++) {
    const base = comp * nvox;
    let o = base;
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        let s = base + start + k * sz + j * sy;
        if (sx === 1) {
          // contiguous rows: bulk copy
          out.set(src.subarray(s, s + nx), o);
          o += nx;
        } else {
          for (let i = 0; i < nx; i++, s += sx) out[o++] = src[s];
        }
      }
    }
  }

  const affine = multiplyAffine(vol.affine, permutationIndexMatrix(inDims, { source: [source[0], source[1], source[2]], flip: [flip[0], flip[1], flip[2]] }));

  const mode = opts.vectors ?? (vol.intent === 'DISPVECT' ? 'world' : 'channels');
  let data = out;
  if (mode === 'voxel') {
    if (C !== 3) throw dataError('reorient', `vectors: 'voxel' needs a 3-component field, this volume has ${C} component(s)`);
    // Output component a is input component source[a], negated where that axis was flipped.
    const permuted = allocLike(out, out.length);
    for (let a = 0; a < 3; a++) {
      const from = out.subarray(source[a] * nvox, (source[a] + 1) * nvox);
      const to = permuted.subarray(a * nvox, (a + 1) * nvox);
      if (flip[a]) for (let i = 0; i < nvox; i++) to[i] = -from[i];
      else to.set(from);
    }
    data = permuted;
  }
  return withData(vol, data, { dims: outDims, affine });
}

/**
 * The 4x4 matrix taking output voxel indices of a permutation/flip to input voxel indices:
 * input index[source[a]] = flip[a] ? n − 1 − out[a] : out[a]. A reoriented volume's affine is `A · T`.
 */
export function permutationIndexMatrix(inDims: readonly number[], perm: AxisPermutation): number[] {
  const T = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  for (let a = 0; a < 3; a++) {
    const c = perm.source[a];
    T[4 * c + a] = perm.flip[a] ? -1 : 1;
    if (perm.flip[a]) T[4 * c + 3] = inDims[c] - 1;
  }
  return T;
}
