/**
 * Surface elements on the voxel-corner grid — the surface model of the DeepMind `surface-distance`
 * package, which Learn2Reg's evaluation uses for its HD95 (`compute_surface_distances` +
 * `compute_robust_hausdorff`).
 *
 * The surface of a binary mask lives on the corners of its voxels: every corner sees the 2×2×2 voxels
 * around it, and a corner whose eight voxels are neither all inside nor all outside carries a piece of the
 * marching-cubes surface through that cell. Each such *surfel* is weighted by its area, so a 95th
 * percentile of surface distances is a percentile over surface area, not over voxel counts.
 *
 * The area of each of the 256 cell configurations is derived here, not tabulated: the marching-cubes
 * polygons of the cell have their vertices at the midpoints of the cut edges; an ambiguous face (two
 * diagonal corners inside) separates the corners of the minority class (inside when at most four corners
 * are inside, else outside), and each polygon is split into the triangles of largest total area. That rule
 * gives the package's table for all 256 configurations (checked against it in tests). Areas scale with
 * the voxel spacing as the package's do: each triangle's area vector is scaled by (s1·s2, s0·s2, s0·s1).
 */
import { squaredDistanceTransform } from './distance.ts';

type P3 = [number, number, number];

/** Corner c = 0..7 of the unit cell at offset (c>>2 & 1, c>>1 & 1, c & 1) along the volume's axes (i, j, k). */
const corner = (c: number): P3 => [(c >> 2) & 1, (c >> 1) & 1, c & 1];

const EDGES: [number, number][] = [];
for (let a = 0; a < 8; a++) for (let b = a + 1; b < 8; b++) {
  const pa = corner(a), pb = corner(b);
  if (Math.abs(pa[0] - pb[0]) + Math.abs(pa[1] - pb[1]) + Math.abs(pa[2] - pb[2]) === 1) EDGES.push([a, b]);
}
const FACES: number[][] = [];
for (let axis = 0; axis < 3; axis++) for (const v of [0, 1]) FACES.push([0, 1, 2, 3, 4, 5, 6, 7].filter((c) => corner(c)[axis] === v));

/** Area vector (½ (b − a) × (c − a)) of a triangle. */
function areaVector(a: P3, b: P3, c: P3): P3 {
  const u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]], v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
  return [0.5 * (u[1] * v[2] - u[2] * v[1]), 0.5 * (u[2] * v[0] - u[0] * v[2]), 0.5 * (u[0] * v[1] - u[1] * v[0])];
}
const norm = (v: P3) => Math.hypot(v[0], v[1], v[2]);

/** The closed marching-cubes loops of one cell configuration (`inside[c]` per corner), as midpoint lists. */
function cellLoops(inside: boolean[]): P3[][] {
  const minority = inside.filter(Boolean).length <= 4;
  const cut = EDGES.map((e, idx) => (inside[e[0]] !== inside[e[1]] ? idx : -1)).filter((idx) => idx >= 0);
  const midpoint = (idx: number): P3 => {
    const [a, b] = EDGES[idx].map(corner);
    return [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, (a[2] + b[2]) / 2];
  };
  const links = new Map<number, number[]>();
  const link = (x: number, y: number) => {
    links.set(x, [...(links.get(x) ?? []), y]);
    links.set(y, [...(links.get(y) ?? []), x]);
  };
  for (const face of FACES) {
    const onFace = cut.filter((idx) => face.includes(EDGES[idx][0]) && face.includes(EDGES[idx][1]));
    if (onFace.length === 2) link(onFace[0], onFace[1]);
    else if (onFace.length === 4) {
      // ambiguous face: cut off each corner of the minority class
      for (const c of face.filter((c) => inside[c] === minority)) {
        const [x, y] = onFace.filter((idx) => EDGES[idx].includes(c));
        link(x, y);
      }
    }
  }
  const seen = new Set<number>();
  const loops: P3[][] = [];
  for (const start of [...links.keys()].sort((a, b) => a - b)) {
    if (seen.has(start)) continue;
    const loop = [start];
    seen.add(start);
    let prev = -1, cur = start;
    for (;;) {
      const next = links.get(cur)!.find((n) => n !== prev && !seen.has(n));
      if (next === undefined) break;
      prev = cur; cur = next;
      loop.push(cur);
      seen.add(cur);
    }
    loops.push(loop.map(midpoint));
  }
  return loops;
}

/** The triangles of the largest-area triangulation of a polygon (dynamic programming over its diagonals). */
function largestTriangulation(poly: P3[]): [P3, P3, P3][] {
  const n = poly.length;
  const best = new Map<number, { area: number; tris: [P3, P3, P3][] }>();
  const solve = (i: number, j: number): { area: number; tris: [P3, P3, P3][] } => {
    if (j - i < 2) return { area: 0, tris: [] };
    const key = i * n + j;
    const known = best.get(key);
    if (known) return known;
    let top = { area: -1, tris: [] as [P3, P3, P3][] };
    for (let k = i + 1; k < j; k++) {
      const left = solve(i, k), right = solve(k, j);
      const area = left.area + right.area + norm(areaVector(poly[i], poly[k], poly[j]));
      if (area > top.area + 1e-12) top = { area, tris: [...left.tris, ...right.tris, [poly[i], poly[k], poly[j]]] };
    }
    best.set(key, top);
    return top;
  };
  return solve(0, n - 1).tris;
}

const CELL_TRIANGLES: [P3, P3, P3][][] = Array.from({ length: 256 }, (_, code) => {
  const inside = [0, 1, 2, 3, 4, 5, 6, 7].map((c) => ((code >> c) & 1) === 1);
  return cellLoops(inside).flatMap(largestTriangulation);
});

const areaTables = new Map<string, Float64Array>();

/** Surface area (mm²) of the marching-cubes surface in each of the 256 cell configurations, for a voxel spacing. */
export function cellSurfaceAreas(spacing: readonly number[] = [1, 1, 1]): Float64Array {
  const key = spacing.join(',');
  let table = areaTables.get(key);
  if (!table) {
    const [s0, s1, s2] = spacing;
    table = Float64Array.from(CELL_TRIANGLES, (tris) => tris.reduce((sum, [a, b, c]) => {
      const v = areaVector(a, b, c);
      return sum + Math.hypot(v[0] * s1 * s2, v[1] * s0 * s2, v[2] * s0 * s1);
    }, 0));
    areaTables.set(key, table);
  }
  return table;
}

/** Directed distances from the surfels of one mask to the other mask's surface, sorted, with their areas. */
export interface SurfelDistances {
  distances: Float64Array;
  areas: Float64Array;
}

/**
 * Corner-grid surface distances between two masks of the same box (`dims`, 0/1, i fastest): for every
 * surfel of A its distance (mm, to the nearest surfel corner of B) and its area, sorted by (distance,
 * area); and the same from B to A. An empty mask has no surfels; distances to it are +Infinity (the
 * package's rule). The masks should be cropped to the box of A ∪ B; the corner grid is one larger than
 * `dims` along every axis, so nothing is lost at the box's faces.
 */
export function cornerSurfaceDistances(a: Uint8Array, b: Uint8Array, dims: readonly number[], spacing: readonly number[] = [1, 1, 1]): { aToB: SurfelDistances; bToA: SurfelDistances } {
  const [nx, ny, nz] = dims;
  const cx = nx + 1, cy = ny + 1, cz = nz + 1;
  const nc = cx * cy * cz;
  const codes = (m: Uint8Array): Uint8Array => {
    const out = new Uint8Array(nc);
    const at = (i: number, j: number, k: number) => (i >= 0 && i < nx && j >= 0 && j < ny && k >= 0 && k < nz ? m[i + nx * (j + ny * k)] : 0);
    for (let k = 0, q = 0; k < cz; k++) for (let j = 0; j < cy; j++) for (let i = 0; i < cx; i++, q++) {
      let code = 0;
      for (let c = 0; c < 8; c++) if (at(i - 1 + ((c >> 2) & 1), j - 1 + ((c >> 1) & 1), k - 1 + (c & 1))) code |= 1 << c;
      out[q] = code;
    }
    return out;
  };
  const ca = codes(a), cb = codes(b);
  const border = (c: Uint8Array) => Uint8Array.from(c, (x) => (x !== 0 && x !== 255 ? 1 : 0));
  const ba = border(ca), bb = border(cb);
  const areas = cellSurfaceAreas(spacing);
  const directed = (from: Uint8Array, fromCodes: Uint8Array, to: Uint8Array): SurfelDistances => {
    const d2 = squaredDistanceTransform(to, [cx, cy, cz], spacing);
    const pairs: [number, number][] = [];
    for (let q = 0; q < nc; q++) if (from[q]) pairs.push([Math.sqrt(d2[q]), areas[fromCodes[q]]]);
    pairs.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    return { distances: Float64Array.from(pairs, (p) => p[0]), areas: Float64Array.from(pairs, (p) => p[1]) };
  };
  return { aToB: directed(ba, ca, bb), bToA: directed(bb, cb, ba) };
}

/** numpy's pairwise summation of a float64 array: exactly what `np.sum` returns for it. */
export function numpySum(x: Float64Array): number {
  if (x.length === 0) return 0;
  const pairwise = (lo: number, n: number): number => {
    if (n < 8) {
      let r = 0;
      for (let i = lo; i < lo + n; i++) r += x[i];
      return r;
    }
    if (n <= 128) {
      const r = [x[lo], x[lo + 1], x[lo + 2], x[lo + 3], x[lo + 4], x[lo + 5], x[lo + 6], x[lo + 7]];
      let i = 8;
      for (; i < n - (n % 8); i += 8) for (let t = 0; t < 8; t++) r[t] += x[lo + i + t];
      let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
      for (; i < n; i++) res += x[lo + i];
      return res;
    }
    let n2 = Math.floor(n / 2);
    n2 -= n2 % 8;
    return pairwise(lo, n2) + pairwise(lo + n2, n - n2);
  };
  return pairwise(0, x.length);
}

/**
 * The area-weighted directed percentile of `compute_robust_hausdorff`: the first sorted distance whose
 * cumulative share of the surface area reaches `percent` (numpy `searchsorted`, left side). +Infinity for
 * a surface with no surfels.
 */
export function areaWeightedPercentile(s: SurfelDistances, percent: number): number {
  const n = s.distances.length;
  if (n === 0) return Infinity;
  const total = numpySum(s.areas);
  const target = percent / 100;
  let cum = 0;
  for (let t = 0; t < n; t++) {
    cum += s.areas[t];
    if (cum / total >= target) return s.distances[t];
  }
  return s.distances[n - 1];
}
