/**
 * Grid geometry comparison. Two volumes share a geometry when they have the same dims and the same
 * voxel->world affine (hence the same spacing and orientation) within a tolerance — the condition
 * for comparing them voxel by voxel (an image and its label map, a fixed image and a warped one).
 * Components and datatype are not geometry and are not compared.
 */
import { dataError } from '@llmed/core/errors';
import { invertAffine, maxAffineDifference, multiplyAffine, spacingFromAffine } from './affine.ts';
import { axisCodes, permutationIndexMatrix, reorientPermutation } from './orientation.ts';

type Grid = { dims: readonly number[]; affine: readonly number[]; spacing?: readonly number[] };

export interface GeometryTolerance {
  /** Largest allowed spacing difference, mm (default 1e-3). */
  spacing?: number;
  /** Largest allowed difference of any affine element, mm (default 1e-3; headers store float32). */
  affine?: number;
}

const fmt = (v: readonly number[]) => `[${v.map((x) => +x.toFixed(4)).join(', ')}]`;

/** Human-readable list of what differs between two grids (empty when they match). */
export function geometryDifferences(a: Grid, b: Grid, tol: GeometryTolerance = {}): string[] {
  const tolS = tol.spacing ?? 1e-3;
  const tolA = tol.affine ?? 1e-3;
  const out: string[] = [];
  if (a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i])) {
    out.push(`dims ${a.dims.join('x')} vs ${b.dims.join('x')}`);
  }
  const sa = a.spacing ?? spacingFromAffine(a.affine);
  const sb = b.spacing ?? spacingFromAffine(b.affine);
  if (sa.some((s, i) => Math.abs(s - sb[i]) > tolS)) out.push(`spacing ${fmt(sa)} vs ${fmt(sb)} mm`);
  const dA = maxAffineDifference(a.affine, b.affine);
  if (dA > tolA) {
    const oa = axisCodes(a.affine);
    const ob = axisCodes(b.affine);
    const ta = [a.affine[3], a.affine[7], a.affine[11]];
    const tb = [b.affine[3], b.affine[7], b.affine[11]];
    const parts = [`affine differs by up to ${+dA.toFixed(4)}`];
    if (oa !== ob) parts.push(`orientation ${oa} vs ${ob}`);
    if (ta.some((t, i) => Math.abs(t - tb[i]) > tolA)) parts.push(`origin ${fmt(ta)} vs ${fmt(tb)} mm`);
    out.push(parts.join(', '));
  }
  return out;
}

/** True when both grids have equal dims and affines (and spacings) within tolerance. */
export function sameGeometry(a: Grid, b: Grid, tol: GeometryTolerance = {}): boolean {
  return geometryDifferences(a, b, tol).length === 0;
}

/**
 * Throw a `dataError` naming both files and everything that differs (dims, spacing, affine) unless
 * the two volumes share a grid. `names` are the files (or roles) the volumes came from.
 */
export function assertSameGeometry(a: Grid, b: Grid, names: readonly [string, string], tol: GeometryTolerance = {}): void {
  const diffs = geometryDifferences(a, b, tol);
  if (diffs.length > 0) {
    throw dataError(
      names[0],
      `geometry of ${names[0]} does not match ${names[1]}: ${diffs.join('; ')}`,
      'resample one onto the other first, or pair files that belong together',
    );
  }
}

/**
 * The "box-to-box" convention some pipelines use (and datasets with dummy headers need): the moving scan's
 * box — first to last voxel centre, after both scans are reoriented to `orientation` when given — is
 * stretched onto the fixed scan's box, whatever the headers say about where the two lie in the world.
 * Returns the affine the moving scan would need for a world-space resampling onto `fixed` to do exactly
 * that, so one resampling path serves both conventions.
 */
export function boxAlignedAffine(moving: Grid, fixed: Grid, orientation?: string, where = 'box-to-box'): number[] {
  const canonical = (g: Grid) => {
    const perm = orientation ? reorientPermutation(g.affine, orientation) : { source: [0, 1, 2] as [number, number, number], flip: [false, false, false] as [boolean, boolean, boolean] };
    return { T: permutationIndexMatrix(g.dims, perm), dims: perm.source.map((c) => g.dims[c]) };
  };
  const m = canonical(moving);
  const f = canonical(fixed);
  const S = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  for (let a = 0; a < 3; a++) {
    if (m.dims[a] < 2 || f.dims[a] < 2) throw dataError(where, `box-to-box alignment needs at least 2 voxels along every axis; axis ${a} has ${m.dims[a]} (moving) and ${f.dims[a]} (fixed)`);
    S[5 * a] = (m.dims[a] - 1) / (f.dims[a] - 1);
  }
  // fixed voxel → moving voxel = T_m · S · T_f⁻¹; the moving affine is then A_f · (that)⁻¹.
  const fixedToMoving = multiplyAffine(multiplyAffine(m.T, S), invertAffine(f.T));
  return multiplyAffine([...fixed.affine], invertAffine(fixedToMoving));
}
