/**
 * Synthetic findings painted into a crop of a real scan, at the source resolution (before any
 * downsampling, so small findings get realistic partial volume). Each function changes the image and the
 * truth label map in place and returns what it did (the sidecar's truth). Intensities: CT in HU; MR in
 * units of the subject's white-matter median (1.0).
 */
import type { Vec3 } from '@llmed/imaging';
import type { Rng } from './rng.ts';

export interface Crop {
  img: Float32Array;
  lab: Int32Array;
  dims: Vec3;
  spacing: Vec3;
}

/** Truth labels of painted findings in the written label maps (organ labels keep their source ids). */
export const LESION_LABEL = 200;
export const STONE_LABEL = 230;
export const EFFUSION_LABEL = 240;

export function organIndices(c: Crop, labels: readonly number[]): Int32Array {
  const set = new Set(labels);
  const out: number[] = [];
  for (let q = 0; q < c.lab.length; q++) if (set.has(c.lab[q])) out.push(q);
  return Int32Array.from(out);
}

export function meanAt(c: Crop, idx: Int32Array): number {
  let s = 0;
  for (const q of idx) s += c.img[q];
  return idx.length ? s / idx.length : 0;
}

const coords = (q: number, d: Vec3): Vec3 => [q % d[0], Math.floor(q / d[0]) % d[1], Math.floor(q / (d[0] * d[1]))];

/** Add `offsets[label]` to every voxel of that label (contrast enhancement of a phase). */
export function enhance(c: Crop, offsets: ReadonlyMap<number, number>): void {
  for (let q = 0; q < c.lab.length; q++) {
    const o = offsets.get(c.lab[q]);
    if (o !== undefined) c.img[q] += o;
  }
}

/**
 * Enlarge an organ by `factor` about its centroid: voxel v takes image value and label from the voxel the
 * inverse scaling maps it to, where that one is organ; rigid structures (bone) are never taken over.
 */
export function enlarge(c: Crop, labels: readonly number[], factor: number, rigid: ReadonlySet<number>): { voxelsBefore: number; voxelsAfter: number } {
  const idx = organIndices(c, labels);
  const set = new Set(labels);
  const d = c.dims;
  const cen = [0, 0, 0];
  const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
  for (const q of idx) {
    const p = coords(q, d);
    for (let a = 0; a < 3; a++) { cen[a] += p[a]; lo[a] = Math.min(lo[a], p[a]); hi[a] = Math.max(hi[a], p[a]); }
  }
  for (let a = 0; a < 3; a++) cen[a] /= Math.max(1, idx.length);
  const img0 = c.img.slice(), lab0 = c.lab.slice();
  const b0 = [0, 1, 2].map((a) => Math.max(0, Math.floor(cen[a] + (lo[a] - cen[a]) * factor) - 1));
  const b1 = [0, 1, 2].map((a) => Math.min(d[a] - 1, Math.ceil(cen[a] + (hi[a] - cen[a]) * factor) + 1));
  let after = 0;
  for (let k = b0[2]; k <= b1[2]; k++) for (let j = b0[1]; j <= b1[1]; j++) for (let i = b0[0]; i <= b1[0]; i++) {
    const v = i + d[0] * (j + d[1] * k);
    const si = Math.round(cen[0] + (i - cen[0]) / factor), sj = Math.round(cen[1] + (j - cen[1]) / factor), sk = Math.round(cen[2] + (k - cen[2]) / factor);
    const s = si + d[0] * (sj + d[1] * sk);
    if (set.has(lab0[s]) && !rigid.has(lab0[v])) { c.lab[v] = lab0[s]; c.img[v] = img0[s]; }
  }
  for (let q = 0; q < c.lab.length; q++) if (set.has(c.lab[q])) after++;
  return { voxelsBefore: idx.length, voxelsAfter: after };
}

export interface PaintedBlob { centerVoxel: Vec3; diameterMm: number; voxels: number; insideFraction: number }

/**
 * A soft-edged ellipsoid blob of `diameterMm` inside the organ `idx` (confined to it), with intensity
 * `target` plus texture noise of `textureSd`; the centre is the best of up to 40 organ voxels by the
 * fraction of the blob inside the organ. Voxels at weight ≥ 0.5 get `label`.
 */
export function paintBlob(
  c: Crop, idx: Int32Array, organLabels: readonly number[], rng: Rng, diameterMm: number, target: number, textureSd: number, label: number, mode: 'blend' | 'max' = 'blend',
): PaintedBlob {
  const d = c.dims, sp = c.spacing;
  const set = new Set(organLabels);
  const r = diameterMm / 2;
  const axes = [rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)];
  const ext = [0, 1, 2].map((a) => Math.ceil((r * axes[a] * 1.3) / sp[a]));
  const inside = (p: Vec3) => {
    let n = 0, tot = 0;
    for (let dk = -ext[2]; dk <= ext[2]; dk++) for (let dj = -ext[1]; dj <= ext[1]; dj++) for (let di = -ext[0]; di <= ext[0]; di++) {
      const rho = Math.hypot((di * sp[0]) / (r * axes[0]), (dj * sp[1]) / (r * axes[1]), (dk * sp[2]) / (r * axes[2]));
      if (rho > 1) continue;
      tot++;
      const i = p[0] + di, j = p[1] + dj, k = p[2] + dk;
      if (i >= 0 && j >= 0 && k >= 0 && i < d[0] && j < d[1] && k < d[2] && set.has(c.lab[i + d[0] * (j + d[1] * k)])) n++;
    }
    return tot ? n / tot : 0;
  };
  let best: Vec3 = coords(idx[Math.floor(rng.next() * idx.length)], d), bestF = inside(best);
  for (let t = 0; t < 40 && bestF < 0.9; t++) {
    const p = coords(idx[Math.floor(rng.next() * idx.length)], d);
    const f = inside(p);
    if (f > bestF) { best = p; bestF = f; }
  }
  let voxels = 0;
  for (let dk = -ext[2]; dk <= ext[2]; dk++) for (let dj = -ext[1]; dj <= ext[1]; dj++) for (let di = -ext[0]; di <= ext[0]; di++) {
    const i = best[0] + di, j = best[1] + dj, k = best[2] + dk;
    if (i < 0 || j < 0 || k < 0 || i >= d[0] || j >= d[1] || k >= d[2]) continue;
    const q = i + d[0] * (j + d[1] * k);
    if (!set.has(c.lab[q]) && c.lab[q] !== label) continue;
    const rho = Math.hypot((di * sp[0]) / (r * axes[0]), (dj * sp[1]) / (r * axes[1]), (dk * sp[2]) / (r * axes[2]));
    const w = rho <= 1 ? 1 : rho < 1.3 ? (1.3 - rho) / 0.3 : 0;
    if (w <= 0) continue;
    const value = target + textureSd * rng.normal();
    c.img[q] = mode === 'max' ? Math.max(c.img[q], c.img[q] * (1 - w) + value * w) : c.img[q] * (1 - w) + value * w;
    if (w >= 0.5) { c.lab[q] = label; voxels++; }
  }
  return { centerVoxel: best, diameterMm, voxels, insideFraction: Math.round(bestF * 1000) / 1000 };
}

/** Fluid in the dependent (posterior, low j in RAS) part of a lung: a pleural effusion. */
export function paintEffusion(c: Crop, idx: Int32Array, depth: number, hu: number, sd: number, rng: Rng): number {
  let jlo = Infinity, jhi = -Infinity;
  for (const q of idx) { const j = Math.floor(q / c.dims[0]) % c.dims[1]; jlo = Math.min(jlo, j); jhi = Math.max(jhi, j); }
  const limit = jlo + depth * (jhi - jlo);
  let n = 0;
  for (const q of idx) {
    const j = Math.floor(q / c.dims[0]) % c.dims[1];
    if (j <= limit) { c.img[q] = hu + sd * rng.normal(); c.lab[q] = EFFUSION_LABEL; n++; }
  }
  return n;
}

/** Augmentation: intensity scale and shift about `centre`, then Gaussian noise. */
export function augmentIntensity(c: Crop, scale: number, shift: number, noiseSd: number, centre: number, rng: Rng): void {
  for (let q = 0; q < c.img.length; q++) c.img[q] = centre + (c.img[q] - centre) * scale + shift + noiseSd * rng.normal();
}
