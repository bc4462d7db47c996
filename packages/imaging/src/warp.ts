/**
 * Displacement fields and warping — the TypeScript twin of the torch spatial transformer
 * (bridge/python/llmed/nn.py), cross-checked against it in tests.
 *
 * Convention (DESIGN.md): a field on a grid of `fieldDims` has 3 components, component c being the
 * displacement along NIfTI axis c in voxels of the field's own grid. The value at output voxel p is
 * the source sampled at p + u(p), mapped onto the source grid with align_corners=True semantics:
 * x_src = (p + u) · (n_src − 1) / (n_field − 1) per axis (so a coarse field can sample a full-resolution
 * image, as LLaMA-Reg's coarse warps do). Outside the source: 0 (grid_sample's zeros padding).
 */
import { resampleTrilinear } from './resample.ts';
import type { Vec3, VoxelArray } from './volume.ts';

function axisScale(nSrc: number, nOut: number): number {
  return nOut > 1 ? (nSrc - 1) / (nOut - 1) : 0;
}

/**
 * Trilinear warp of a scalar (or multi-component) image. `src` has `srcDims`, the field and the output
 * have `fieldDims`. Returns Float32Array of fieldDims × components.
 */
export function warpTrilinear(src: ArrayLike<number>, srcDims: readonly number[], field: ArrayLike<number>, fieldDims: readonly number[], components = 1): Float32Array {
  const [nx, ny, nz] = srcDims;
  const [mx, my, mz] = fieldDims;
  const nOut = mx * my * mz;
  const nSrc = nx * ny * nz;
  const sx = axisScale(nx, mx), sy = axisScale(ny, my), sz = axisScale(nz, mz);
  const out = new Float32Array(nOut * components);
  const sxy = nx * ny;
  for (let k = 0, o = 0; k < mz; k++) {
    for (let j = 0; j < my; j++) {
      for (let i = 0; i < mx; i++, o++) {
        const x = (i + field[o]) * sx;
        const y = (j + field[nOut + o]) * sy;
        const z = (k + field[2 * nOut + o]) * sz;
        const x0 = Math.floor(x), y0 = Math.floor(y), z0 = Math.floor(z);
        const fx = x - x0, fy = y - y0, fz = z - z0;
        // Each of the 8 corners contributes only when inside the source (zeros padding).
        for (let c = 0; c < components; c++) {
          const base = c * nSrc;
          let acc = 0;
          for (let dz = 0; dz < 2; dz++) {
            const zz = z0 + dz;
            if (zz < 0 || zz >= nz) continue;
            const wz = dz ? fz : 1 - fz;
            for (let dy = 0; dy < 2; dy++) {
              const yy = y0 + dy;
              if (yy < 0 || yy >= ny) continue;
              const wzy = wz * (dy ? fy : 1 - fy);
              const row = base + yy * nx + zz * sxy;
              if (x0 >= 0 && x0 < nx) acc += wzy * (1 - fx) * src[row + x0];
              if (x0 + 1 >= 0 && x0 + 1 < nx) acc += wzy * fx * src[row + x0 + 1];
            }
          }
          out[c * nOut + o] = acc;
        }
      }
    }
  }
  return out;
}

/** Nearest-neighbour warp (labels). Output has the same array type as `src`; outside → 0. */
export function warpNearest<T extends VoxelArray>(src: T, srcDims: readonly number[], field: ArrayLike<number>, fieldDims: readonly number[]): T {
  const [nx, ny, nz] = srcDims;
  const [mx, my, mz] = fieldDims;
  const nOut = mx * my * mz;
  const sx = axisScale(nx, mx), sy = axisScale(ny, my), sz = axisScale(nz, mz);
  const out = new (src.constructor as { new (n: number): T })(nOut);
  for (let k = 0, o = 0; k < mz; k++) {
    for (let j = 0; j < my; j++) {
      for (let i = 0; i < mx; i++, o++) {
        // Round half away from zero is what grid_sample(mode='nearest') does on CPU for positive coords.
        const x = Math.round((i + field[o]) * sx);
        const y = Math.round((j + field[nOut + o]) * sy);
        const z = Math.round((k + field[2 * nOut + o]) * sz);
        out[o] = x < 0 || x >= nx || y < 0 || y >= ny || z < 0 || z >= nz ? 0 : src[x + nx * (y + ny * z)];
      }
    }
  }
  return out;
}

/**
 * Upsample a field from `dims` to `outDims` trilinearly (align_corners=True) and rescale the
 * displacements to voxels of the new grid: × (n_out − 1)/(n_in − 1) per component, which is ×2 for an
 * exact doubling of (n − 1). Forgetting the rescale halves the coarse field (LLaMA-Reg's released bug).
 */
export function upsampleField(field: Float32Array, dims: readonly number[], outDims: readonly number[], rescale = true): Float32Array {
  const nOut = outDims[0] * outDims[1] * outDims[2];
  const out = resampleTrilinear(field, dims, outDims, 3);
  if (!rescale) return out;
  for (let c = 0; c < 3; c++) {
    const s = dims[c] > 1 ? (outDims[c] - 1) / (dims[c] - 1) : 1;
    for (let o = c * nOut; o < (c + 1) * nOut; o++) out[o] *= s;
  }
  return out;
}

/**
 * Compose two fields on the same grid: (a ∘ b)(p) = b(p) + a(p + b(p)) — first b, then a. Used when a
 * pre-alignment field and a predicted field must become one.
 */
export function composeFields(a: Float32Array, b: Float32Array, dims: readonly number[]): Float32Array {
  const n = dims[0] * dims[1] * dims[2];
  const aAtB = warpTrilinearVector(a, dims, b);
  const out = new Float32Array(3 * n);
  for (let q = 0; q < 3 * n; q++) out[q] = b[q] + aAtB[q];
  return out;
}

/** Warp a 3-component field with border-clamped sampling (fields do not fall to zero outside). */
function warpTrilinearVector(vec: Float32Array, dims: readonly number[], field: Float32Array): Float32Array {
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  const clamped = new Float32Array(3 * n);
  for (let k = 0, o = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, o++) {
        // Clamp the sampling point into the grid so composition near the border extrapolates flat.
        clamped[o] = Math.min(Math.max(i + field[o], 0), nx - 1) - i;
        clamped[n + o] = Math.min(Math.max(j + field[n + o], 0), ny - 1) - j;
        clamped[2 * n + o] = Math.min(Math.max(k + field[2 * n + o], 0), nz - 1) - k;
      }
    }
  }
  return warpTrilinear(vec, dims, clamped, dims, 3);
}

/** Deterministic PRNG (mulberry32) + Box-Muller, so generated data is identical on every machine. */
export function seededNormal(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
}

/** Separable Gaussian blur of one scalar volume (clamped borders), σ in voxels. */
export function gaussianBlur(data: Float32Array, dims: readonly number[], sigma: number): Float32Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const kernel = new Float32Array(2 * radius + 1);
  let sum = 0;
  for (let t = -radius; t <= radius; t++) sum += kernel[t + radius] = Math.exp(-(t * t) / (2 * sigma * sigma));
  for (let t = 0; t < kernel.length; t++) kernel[t] /= sum;
  let cur = data;
  const [nx, ny, nz] = dims;
  const strides = [1, nx, nx * ny];
  for (let axis = 0; axis < 3; axis++) {
    const next = new Float32Array(cur.length);
    const n = dims[axis];
    const stride = strides[axis];
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const idx = i + nx * (j + ny * k);
          const pos = axis === 0 ? i : axis === 1 ? j : k;
          const start = idx - pos * stride;
          let acc = 0;
          for (let t = -radius; t <= radius; t++) {
            const q = Math.min(Math.max(pos + t, 0), n - 1);
            acc += kernel[t + radius] * cur[start + q * stride];
          }
          next[idx] = acc;
        }
      }
    }
    cur = next;
  }
  return cur;
}

/**
 * A smooth random displacement field: white noise blurred with a Gaussian of σ = `smoothness` voxels,
 * each component scaled so that the largest displacement magnitude is `maxDisplacement` voxels, and
 * tapered to zero over the outermost `smoothness` voxels so anatomy does not leave the grid.
 */
export function smoothRandomField(dims: Vec3 | readonly number[], opts: { maxDisplacement: number; smoothness: number; seed: number }): Float32Array {
  const n = dims[0] * dims[1] * dims[2];
  const normal = seededNormal(opts.seed);
  const out = new Float32Array(3 * n);
  const sigma = Math.max(opts.smoothness / 2, 1);
  for (let c = 0; c < 3; c++) {
    const noise = new Float32Array(n);
    for (let q = 0; q < n; q++) noise[q] = normal();
    out.set(gaussianBlur(noise, dims, sigma), c * n);
  }
  const [nx, ny, nz] = dims;
  const taper = (p: number, len: number) => Math.min(1, Math.min(p, len - 1 - p) / Math.max(opts.smoothness, 1));
  let maxMag = 0;
  for (let k = 0, o = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, o++) {
        const w = Math.max(0, taper(i, nx) * taper(j, ny) * taper(k, nz));
        out[o] *= w; out[n + o] *= w; out[2 * n + o] *= w;
        maxMag = Math.max(maxMag, Math.hypot(out[o], out[n + o], out[2 * n + o]));
      }
    }
  }
  const s = maxMag > 0 ? opts.maxDisplacement / maxMag : 0;
  for (let q = 0; q < 3 * n; q++) out[q] *= s;
  return out;
}
