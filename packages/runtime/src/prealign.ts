/**
 * Affine pre-alignment of a pair — `llmed register --affine` — through ITK's elastix compiled to
 * WebAssembly (`@itk-wasm/elastix`, run in Node by its WASI build: the .wasm pipelines ship inside the npm
 * package, nothing is fetched at run time). Deformable models assume roughly aligned inputs; this brings
 * a pair there with a well-kept registration library rather than a hand-written optimiser.
 *
 * Both scans are first sampled in world space onto coarse axis-aligned grids (`PREALIGN_SPACING_MM`), so
 * elastix sees plain images whose direction is the LPS flip of RAS and nothing depends on how a header
 * stores an oblique direction. Elastix runs a rigid then an affine stage (its default parameter maps,
 * Mattes mutual information — multimodal pairs work — centre-of-gravity initialisation). Its result maps
 * fixed LPS points to moving LPS points, T(x) = A(x − c) + c + t; it is returned as a RAS 4×4 matrix.
 */
import { LlmedError } from '@llmed/core';
import { multiplyAffine, resampleOntoGrid, voxelToWorld, type Volume } from '@llmed/imaging';

/** Grid spacing of the images elastix sees (mm), and the most voxels along an axis. */
export const PREALIGN_SPACING_MM = 3;
const PREALIGN_MAX_VOXELS = 96;

export interface AffinePrealignment {
  /** Fixed world point (RAS mm) → moving world point, row-major 4×4. */
  fixedToMoving: number[];
  /** What elastix returned (LPS, its own parameterisation), for the record. */
  elastix: { transforms: string[]; parameters: number[][]; centerOfRotation: number[]; stagesRas: number[][] };
  library: string;
  seconds: number;
}

/** An axis-aligned RAS grid covering `vol`'s voxel centres at about `spacing` mm. */
function coarseWorldGrid(vol: Volume, spacing: number): { dims: [number, number, number]; affine: number[] } {
  const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
  const [nx, ny, nz] = vol.dims;
  for (const i of [0, nx - 1]) for (const j of [0, ny - 1]) for (const k of [0, nz - 1]) {
    const p = voxelToWorld(vol.affine, i, j, k);
    for (let a = 0; a < 3; a++) { lo[a] = Math.min(lo[a], p[a]); hi[a] = Math.max(hi[a], p[a]); }
  }
  const extent = [0, 1, 2].map((a) => hi[a] - lo[a]);
  const step = Math.max(spacing, ...extent.map((e) => e / (PREALIGN_MAX_VOXELS - 1)));
  const dims = extent.map((e) => Math.max(2, Math.round(e / step) + 1)) as [number, number, number];
  return { dims, affine: [step, 0, 0, lo[0], 0, step, 0, lo[1], 0, 0, step, lo[2], 0, 0, 0, 1] };
}

/** RAS volume on an axis-aligned grid → an itk-wasm image (LPS physical space). */
function toItkImage(itk: typeof import('itk-wasm'), vol: Volume): import('itk-wasm').Image {
  const image = new itk.Image(new itk.ImageType(3, itk.FloatTypes.Float32, itk.PixelTypes.Scalar, 1));
  const s = vol.affine[0];
  image.size = [...vol.dims];
  image.spacing = [s, s, s];
  // RAS (x, y, z) is LPS (−x, −y, z): axis-aligned RAS voxel axes point along −L, −P, +S.
  image.origin = [-vol.affine[3], -vol.affine[7], vol.affine[11]];
  image.direction = new Float64Array([-1, 0, 0, 0, -1, 0, 0, 0, 1]);
  image.data = vol.data instanceof Float32Array ? vol.data : Float32Array.from(vol.data);
  return image;
}

/** Robust intensity normalisation for the optimiser: background (outside the field of view) to 0. */
function forElastix(vol: Volume): Volume {
  const d = Float32Array.from(vol.data, (x) => (Number.isFinite(x) ? x : 0));
  return { ...vol, data: d };
}

const numbers = (xs: unknown): number[] => (Array.isArray(xs) ? xs.map(Number) : []);

/**
 * Estimate the affine transform that best aligns `moving` to `fixed` in world space (mutual information).
 * Throws one `data` error when elastix fails (for instance when the scans do not overlap at all).
 */
export async function affinePrealign(moving: Volume, fixed: Volume, opts: { where?: string } = {}): Promise<AffinePrealignment> {
  const t0 = performance.now();
  const itk = await import('itk-wasm');
  const elastixLib = await import('@itk-wasm/elastix');
  const fixedGrid = coarseWorldGrid(fixed, PREALIGN_SPACING_MM);
  const movingGrid = coarseWorldGrid(moving, PREALIGN_SPACING_MM);
  const f = forElastix(resampleOntoGrid(fixed, fixedGrid, 'linear', { outside: 0 }));
  const m = forElastix(resampleOntoGrid(moving, movingGrid, 'linear', { outside: 0 }));
  const maps = [];
  for (const name of ['rigid', 'affine']) {
    const { parameterMap } = await elastixLib.defaultParameterMapNode(name, { numberOfResolutions: 3 }) as { parameterMap: Record<string, string[]> };
    parameterMap.MaximumNumberOfIterations = ['256'];
    parameterMap.WriteResultImage = ['false'];
    if (name === 'rigid') {
      parameterMap.AutomaticTransformInitialization = ['true'];
      parameterMap.AutomaticTransformInitializationMethod = ['CenterOfGravity'];
    }
    maps.push(parameterMap);
  }
  let result: { transformParameterObject: unknown };
  try {
    result = await elastixLib.elastixNode(maps, { fixed: toItkImage(itk, f), moving: toItkImage(itk, m) }) as { transformParameterObject: unknown };
  } catch (e) {
    throw new LlmedError('data', `affine pre-alignment failed in elastix: ${(e as Error)?.message || String(e)}`, { where: opts.where, hint: 'check that the two scans overlap in world space (their headers), or register without --affine' });
  }
  const params = result.transformParameterObject as Array<Record<string, unknown>>;
  // The stages compose as elastix chains an initial transform: a fixed point goes through the rigid stage
  // first, then the affine one (fixed → moving = T_affine ∘ T_rigid; checked on a known header change).
  const F = [-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]; // RAS ↔ LPS (its own inverse)
  let fixedToMoving = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  const transforms: string[] = [], parameters: number[][] = [], stagesRas: number[][] = [];
  let centre: number[] = [];
  for (const stage of params) {
    const p = numbers(stage.TransformParameters);
    const c = numbers(stage.CenterOfRotationPoint);
    const kind = String((stage.Transform as string[] | undefined)?.[0] ?? '');
    transforms.push(kind);
    parameters.push(p);
    centre = c;
    let A: number[], t: number[];
    if (kind === 'EulerTransform') {
      const [rx, ry, rz, tx, ty, tz] = p;
      // ITK Euler3D, ZXY order by default: R = Rz · Rx · Ry
      const Rx = [1, 0, 0, 0, Math.cos(rx), -Math.sin(rx), 0, Math.sin(rx), Math.cos(rx)];
      const Ry = [Math.cos(ry), 0, Math.sin(ry), 0, 1, 0, -Math.sin(ry), 0, Math.cos(ry)];
      const Rz = [Math.cos(rz), -Math.sin(rz), 0, Math.sin(rz), Math.cos(rz), 0, 0, 0, 1];
      const mul = (a: number[], b: number[]) => [0, 1, 2].flatMap((r) => [0, 1, 2].map((col) => a[3 * r] * b[col] + a[3 * r + 1] * b[3 + col] + a[3 * r + 2] * b[6 + col]));
      A = mul(mul(Rz, Rx), Ry);
      t = [tx, ty, tz];
    } else if (kind === 'AffineTransform') {
      A = p.slice(0, 9);
      t = p.slice(9, 12);
    } else {
      throw new Error(`elastix returned a ${kind || 'unknown'} transform; expected EulerTransform or AffineTransform`);
    }
    // T(x) = A (x − c) + c + t in LPS, as a 4×4
    const lps = [A[0], A[1], A[2], 0, A[3], A[4], A[5], 0, A[6], A[7], A[8], 0, 0, 0, 0, 1];
    for (let r = 0; r < 3; r++) lps[4 * r + 3] = c[r] + t[r] - (A[3 * r] * c[0] + A[3 * r + 1] * c[1] + A[3 * r + 2] * c[2]);
    const ras = multiplyAffine(multiplyAffine(F, lps), F);
    stagesRas.push(ras);
    fixedToMoving = multiplyAffine(ras, fixedToMoving);
  }
  return {
    fixedToMoving,
    elastix: { transforms, parameters, centerOfRotation: centre, stagesRas },
    library: '@itk-wasm/elastix 1.0.1 (ITK elastix, WebAssembly)',
    seconds: (performance.now() - t0) / 1000,
  };
}
