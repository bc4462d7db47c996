/**
 * Small 4x4 / 3x3 matrix helpers for voxel->world affines.
 *
 * Every affine in llmed is a `number[16]`, row-major, mapping voxel indices (i, j, k, 1) to world
 * coordinates (x, y, z, 1) in RAS+ millimetres — the same matrix nibabel calls `img.affine`.
 * Element (r, c) lives at index `4 * r + c`.
 */

export type Vec3 = [number, number, number];

/** The 4x4 identity as a row-major `number[16]`. */
export function identityAffine(): number[] {
  return [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
}

/** Row-major product `a · b` of two 4x4 matrices. */
export function multiplyAffine(a: readonly number[], b: readonly number[]): number[] {
  const out = new Array<number>(16).fill(0);
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[4 * r + k] * b[4 * k + c];
      out[4 * r + c] = s;
    }
  }
  return out;
}

/** Inverse of a 4x4 affine (last row 0 0 0 1). Throws a plain Error if the 3x3 part is singular. */
export function invertAffine(a: readonly number[]): number[] {
  const m = linear3(a);
  const inv = invert3(m);
  const t = [a[3], a[7], a[11]];
  const out = identityAffine();
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) out[4 * r + c] = inv[3 * r + c];
    out[4 * r + 3] = -(inv[3 * r] * t[0] + inv[3 * r + 1] * t[1] + inv[3 * r + 2] * t[2]);
  }
  return out;
}

/** The 3x3 linear part of a 4x4 affine, row-major `number[9]`. */
export function linear3(a: readonly number[]): number[] {
  return [a[0], a[1], a[2], a[4], a[5], a[6], a[8], a[9], a[10]];
}

/** Determinant of a row-major 3x3 matrix. */
export function det3(m: readonly number[]): number {
  return (
    m[0] * (m[4] * m[8] - m[5] * m[7]) -
    m[1] * (m[3] * m[8] - m[5] * m[6]) +
    m[2] * (m[3] * m[7] - m[4] * m[6])
  );
}

/** Inverse of a row-major 3x3 matrix. Throws a plain Error if singular. */
export function invert3(m: readonly number[]): number[] {
  const d = det3(m);
  if (!Number.isFinite(d) || Math.abs(d) < 1e-12) throw new Error('singular 3x3 matrix');
  const inv = [
    m[4] * m[8] - m[5] * m[7],
    m[2] * m[7] - m[1] * m[8],
    m[1] * m[5] - m[2] * m[4],
    m[5] * m[6] - m[3] * m[8],
    m[0] * m[8] - m[2] * m[6],
    m[2] * m[3] - m[0] * m[5],
    m[3] * m[7] - m[4] * m[6],
    m[1] * m[6] - m[0] * m[7],
    m[0] * m[4] - m[1] * m[3],
  ];
  return inv.map((v) => v / d);
}

/** World position (x, y, z) of the centre of voxel (i, j, k). */
export function voxelToWorld(affine: readonly number[], i: number, j: number, k: number): Vec3 {
  return [
    affine[0] * i + affine[1] * j + affine[2] * k + affine[3],
    affine[4] * i + affine[5] * j + affine[6] * k + affine[7],
    affine[8] * i + affine[9] * j + affine[10] * k + affine[11],
  ];
}

/** Continuous voxel index (i, j, k) of world point (x, y, z). */
export function worldToVoxel(affine: readonly number[], x: number, y: number, z: number): Vec3 {
  const inv = invertAffine(affine);
  return voxelToWorld(inv, x, y, z);
}

/**
 * Voxel spacing implied by an affine: the Euclidean norm of each of the three columns of its 3x3 part
 * (what nibabel's `voxel_sizes(affine)` computes). This is the geometric truth even when a header's
 * pixdim disagrees with its sform.
 */
export function spacingFromAffine(affine: readonly number[]): Vec3 {
  const n = (c: number) => Math.hypot(affine[c], affine[4 + c], affine[8 + c]);
  return [n(0), n(1), n(2)];
}

/** Largest absolute element-wise difference between two affines. */
export function maxAffineDifference(a: readonly number[], b: readonly number[]): number {
  let m = 0;
  for (let i = 0; i < 16; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Closest orthogonal matrix to a non-singular 3x3 `m` (polar decomposition `m = Q·S`, returns Q),
 * by Higham's Newton iteration `Q <- (Q + Q^-T) / 2`. Keeps the sign of the determinant. Used to
 * turn a possibly sheared sform into the rotation a NIfTI qform can hold.
 */
export function polarOrthogonal3(m: readonly number[]): number[] {
  let q = [...m];
  for (let it = 0; it < 100; it++) {
    let inv: number[];
    try {
      inv = invert3(q);
    } catch {
      return [1, 0, 0, 0, 1, 0, 0, 0, 1];
    }
    // inverse transpose
    const invT = [inv[0], inv[3], inv[6], inv[1], inv[4], inv[7], inv[2], inv[5], inv[8]];
    const next = q.map((v, idx) => 0.5 * (v + invT[idx]));
    let diff = 0;
    for (let i = 0; i < 9; i++) diff = Math.max(diff, Math.abs(next[i] - q[i]));
    q = next;
    if (diff < 1e-14) break;
  }
  return q;
}

/** NIfTI quaternion representation of an affine, as stored in a qform. */
export interface Quaternion {
  /** quatern_b, quatern_c, quatern_d (a is implied: a = sqrt(1 - b² - c² - d²) >= 0). */
  b: number;
  c: number;
  d: number;
  /** qoffset_x/y/z: world position of voxel (0,0,0). */
  offset: Vec3;
  /** pixdim[1..3]: voxel sizes (positive). */
  pixdim: Vec3;
  /** pixdim[0]: +1, or -1 when the voxel axes form a left-handed system (det < 0). */
  qfac: 1 | -1;
}

/**
 * Decompose an affine into a NIfTI qform (nifti1_io's `nifti_mat44_to_quatern`): voxel sizes are the
 * column norms, the rotation is the orthogonal polar factor of the normalised columns (exact for
 * rotation+scaling affines; the nearest rotation for a sheared one), qfac absorbs a reflection.
 */
export function affineToQuaternion(affine: readonly number[]): Quaternion {
  const m = linear3(affine);
  const pixdim: Vec3 = [0, 0, 0];
  for (let c = 0; c < 3; c++) {
    let n = Math.hypot(m[c], m[3 + c], m[6 + c]);
    if (n === 0 || !Number.isFinite(n)) {
      // degenerate column: treat as a unit axis
      m[c] = c === 0 ? 1 : 0;
      m[3 + c] = c === 1 ? 1 : 0;
      m[6 + c] = c === 2 ? 1 : 0;
      n = 1;
    }
    pixdim[c] = n;
    m[c] /= n;
    m[3 + c] /= n;
    m[6 + c] /= n;
  }
  const q = polarOrthogonal3(m);
  let qfac: 1 | -1 = 1;
  if (det3(q) < 0) {
    qfac = -1;
    q[2] = -q[2];
    q[5] = -q[5];
    q[8] = -q[8];
  }
  const [r11, r12, r13, r21, r22, r23, r31, r32, r33] = q;
  let a = r11 + r22 + r33 + 1;
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xd = 1 + r11 - (r22 + r33);
    const yd = 1 + r22 - (r11 + r33);
    const zd = 1 + r33 - (r11 + r22);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12 + r21)) / b;
      d = (0.25 * (r13 + r31)) / b;
      a = (0.25 * (r32 - r23)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12 + r21)) / c;
      d = (0.25 * (r23 + r32)) / c;
      a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13 + r31)) / d;
      c = (0.25 * (r23 + r32)) / d;
      a = (0.25 * (r21 - r12)) / d;
    }
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { b, c, d, offset: [affine[3], affine[7], affine[11]], pixdim, qfac };
}

/**
 * Affine from a NIfTI qform (nifti1.h "method 2"): R(quaternion) · diag(dx, dy, qfac·dz) + offset.
 * `a` is recomputed from b, c, d; when b²+c²+d² rounds above 1, a = 0 and (b, c, d) is renormalised,
 * as nifti1_io does. Non-positive pixdims are taken as 1 (nifti1_io's rule).
 */
export function quaternionToAffine(q: Quaternion): number[] {
  let { b, c, d } = q;
  const a2 = 1 - (b * b + c * c + d * d);
  let a: number;
  if (a2 < 1e-7) {
    const n = Math.hypot(b, c, d) || 1;
    b /= n;
    c /= n;
    d /= n;
    a = 0;
  } else {
    a = Math.sqrt(a2);
  }
  const dx = q.pixdim[0] > 0 ? q.pixdim[0] : 1;
  const dy = q.pixdim[1] > 0 ? q.pixdim[1] : 1;
  const dz = (q.pixdim[2] > 0 ? q.pixdim[2] : 1) * (q.qfac < 0 ? -1 : 1);
  const R = [
    a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c),
    2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b),
    2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b,
  ];
  return [
    R[0] * dx, R[1] * dy, R[2] * dz, q.offset[0],
    R[3] * dx, R[4] * dy, R[5] * dz, q.offset[1],
    R[6] * dx, R[7] * dy, R[8] * dz, q.offset[2],
    0, 0, 0, 1,
  ];
}
