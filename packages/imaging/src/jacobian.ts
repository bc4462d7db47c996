/**
 * Jacobian determinant of a dense transformation φ(p) = p + u(p), for folding and SDlogJ metrics and the
 * Jacobian picture.
 *
 * Field layout (DESIGN.md): 3 components, component-major, component c = displacement along NIfTI axis
 * c, i fastest. The Jacobian is J[c][a] = δ_ca + ∂u_c/∂x_a, with derivatives taken exactly as
 * `np.gradient` (edge_order=1) does, which is what LLaMA-Reg's and VoxelMorph's `jacobian_determinant`
 * use on `u + grid`:
 *   - inside:            ∂u/∂x ≈ (u[x+1] − u[x−1]) / (2h)       (central difference)
 *   - first / last voxel: (u[1] − u[0]) / h,  (u[n−1] − u[n−2]) / h  (one-sided, first order)
 *   - an axis of length 1: derivative 0 (np.gradient refuses such an axis; a 2-D slab has no
 *     deformation across it).
 * Adding the identity grid before differencing (as VoxelMorph does) changes nothing: its derivative is
 * exactly δ_ca with these stencils.
 *
 * Units: h is 1 (the field is in voxels of its own grid) unless `spacing` is given, in which case the
 * field is taken to be in mm and h along axis a is spacing[a] mm. Both give the same determinant: with
 * S = diag(spacing), a field in mm is u_mm = S·u_vox and the grid in mm is x_mm = S·x_vox, so
 * J_mm = S·J_vox·S⁻¹ and det J_mm = det S · det J_vox / det S = det J_vox. The determinant is a ratio
 * of volumes and has no unit; only mixing units (a field in mm on a grid in voxels) changes it, and
 * then it is wrong.
 */

export interface JacobianOptions {
  /** Field given in mm: grid step along axis a is spacing[a] mm. Omit for a field in voxels. */
  spacing?: readonly number[];
}

/** det(I + ∇u) at every voxel (see module doc for the stencils), as a Float32Array of nx·ny·nz values. */
export function jacobianDeterminant(field: ArrayLike<number>, dims: readonly number[], opts: JacobianOptions = {}): Float32Array {
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  if (dims.length !== 3 || field.length !== 3 * n) {
    throw new Error(`jacobianDeterminant: a 3-component field on [${dims.join(', ')}] has ${3 * n} values, got ${field.length}`);
  }
  const h = opts.spacing ?? [1, 1, 1];
  if (h.length !== 3 || h.some((s) => !(s > 0))) throw new Error(`jacobianDeterminant: spacing must be three positive numbers, got [${h.join(', ')}]`);
  const plane = nx * ny;
  const out = new Float32Array(n);
  const ux = 0, uy = n, uz = 2 * n;

  // Per axis: offsets to the two samples and the divisor, chosen once per position along that axis.
  const stencil = (pos: number, len: number, stride: number, step: number): [number, number, number] => {
    if (len === 1) return [0, 0, 0];
    if (pos === 0) return [stride, 0, 1 / step];
    if (pos === len - 1) return [0, -stride, 1 / step];
    return [stride, -stride, 1 / (2 * step)];
  };
  const sx: Array<[number, number, number]> = Array.from({ length: nx }, (_, i) => stencil(i, nx, 1, h[0]));
  const sy: Array<[number, number, number]> = Array.from({ length: ny }, (_, j) => stencil(j, ny, nx, h[1]));
  const sz: Array<[number, number, number]> = Array.from({ length: nz }, (_, k) => stencil(k, nz, plane, h[2]));

  for (let k = 0, p = 0; k < nz; k++) {
    const [zf, zb, zw] = sz[k];
    for (let j = 0; j < ny; j++) {
      const [yf, yb, yw] = sy[j];
      for (let i = 0; i < nx; i++, p++) {
        const [xf, xb, xw] = sx[i];
        // Row c of J: gradient of component c; the identity sits on the diagonal.
        const a00 = 1 + (field[ux + p + xf] - field[ux + p + xb]) * xw;
        const a01 = (field[ux + p + yf] - field[ux + p + yb]) * yw;
        const a02 = (field[ux + p + zf] - field[ux + p + zb]) * zw;
        const a10 = (field[uy + p + xf] - field[uy + p + xb]) * xw;
        const a11 = 1 + (field[uy + p + yf] - field[uy + p + yb]) * yw;
        const a12 = (field[uy + p + zf] - field[uy + p + zb]) * zw;
        const a20 = (field[uz + p + xf] - field[uz + p + xb]) * xw;
        const a21 = (field[uz + p + yf] - field[uz + p + yb]) * yw;
        const a22 = 1 + (field[uz + p + zf] - field[uz + p + zb]) * zw;
        out[p] = a00 * (a11 * a22 - a12 * a21) - a01 * (a10 * a22 - a12 * a20) + a02 * (a10 * a21 - a11 * a20);
      }
    }
  }
  return out;
}
