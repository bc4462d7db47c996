/**
 * The registration metrics together: analytic cases of the Jacobian metrics (several metrics on one field),
 * and cross-checks of every metric against its plugin's Python reference (numpy/scipy:
 * distance_transform_edt with sampling, binary_erosion surfaces, np.gradient Jacobians, np.percentile;
 * DeepMind's surface-distance for l2r-hd95) on synthetic maps and on real label maps from ../shared/data
 * warped by smooth random fields. Each metric's own cases are in its plugin folder.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { jacobianDeterminant, presentLabels, readLabelMap, smoothRandomField, upsampleField, type Vec3, warpNearest } from '@llmed/imaging';
import { descriptor as diceDescriptor, dice } from '@llmed/plugin-dice';
import { descriptor as epeDescriptor, endpointError } from '@llmed/plugin-endpoint-error';
import { descriptor as hd95Descriptor, hd95 } from '@llmed/plugin-hd95';
import { descriptor as negativeDescriptor, negativeJacobianPercent } from '@llmed/plugin-jacobian-negative';
import { descriptor as nonpositiveDescriptor, nonpositiveJacobianPercent } from '@llmed/plugin-jacobian-nonpositive';
import { descriptor as l2rHd95Descriptor, l2rHd95, voxelBoundaryHd95 } from '@llmed/plugin-l2r-hd95';
import { descriptor as l2rSdlogjDescriptor, l2rSdLogJacobian } from '@llmed/plugin-l2r-sdlogj';
import { descriptor as sdlogjDescriptor, sdLogJacobian } from '@llmed/plugin-sdlogj';
import { answerPerLabel, hasPython, MetricReference } from '../helpers/metric-reference.ts';
import { hasSharedData, sharedData } from '../helpers/workspace.ts';
import { ball, voxelIndex } from '../helpers/volumes.ts';

// Whole-volume scipy references take tens of seconds on a busy 2-core machine.
const REAL_DATA_TIMEOUT_MS = 240_000;
const ASEG_EVAL_LABELS = [2, 3, 4, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 28, 31, 41, 42, 43, 46, 47, 49, 50, 51, 52, 53, 54, 60, 63];
const shared = (f: string) => `${sharedData}/${f}`;

describe('Jacobian metrics: analytic cases', () => {
  const dims: Vec3 = [7, 6, 5];
  const n = 7 * 6 * 5;

  it('identity field: det J = 1 everywhere, no folding, SDlogJ 0', () => {
    const det = jacobianDeterminant(new Float32Array(3 * n), dims);
    expect(det.every((v) => v === 1)).toBe(true);
    expect(nonpositiveJacobianPercent(det)).toBe(0);
    expect(sdLogJacobian(det)).toBe(0);
    expect(l2rSdLogJacobian(det, dims)).toBeCloseTo(0, 12);
  });

  it('a known fold: u_x(i) chosen so det J = 1 + central difference crosses 0 at known voxels; ≤ 0 vs < 0', () => {
    const line: Vec3 = [10, 3, 3];
    const m = 90;
    // u_x along i; det J = 1 + ∂u_x/∂i with np.gradient stencils:
    const ux = [0, 0, 0, -1, -3, -5, -5.5, -5.5, -5.5, -5.5];
    // ∂u_x/∂i: [0, 0, -0.5, -1.5, -2, -1.25, -0.25, 0, 0, 0] → det: [1, 1, 0.5, -0.5, -1, -0.25, 0.75, 1, 1, 1]
    const u = new Float32Array(3 * m);
    for (let k = 0; k < 3; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 10; i++) u[voxelIndex(line, i, j, k)] = ux[i];
    const det = jacobianDeterminant(u, line);
    expect([...det.subarray(0, 10)]).toEqual([1, 1, 0.5, -0.5, -1, -0.25, 0.75, 1, 1, 1]);
    expect(nonpositiveJacobianPercent(det)).toBeCloseTo((100 * 3) / 10, 10);
    expect(negativeJacobianPercent(det)).toBeCloseTo((100 * 3) / 10, 10);
    // Make one determinant exactly 0: ∂u_x/∂i = −1 at i = 2 only counts for ≤ 0.
    const ux0 = [0, 0, 0, -2, -2, -2, -2, -2, -2, -2]; // gradient at i=2: (−2 − 0)/2 = −1 → det 0; at 3: −1 → 0
    for (let k = 0; k < 3; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 10; i++) u[voxelIndex(line, i, j, k)] = ux0[i];
    const det0 = jacobianDeterminant(u, line);
    expect([...det0.subarray(0, 10)]).toEqual([1, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
    expect(nonpositiveJacobianPercent(det0)).toBeCloseTo(20, 10);
    expect(negativeJacobianPercent(det0)).toBe(0);
    // SDlogJ skips the folded voxels; l2r-sdlogj keeps them through the +3 shift.
    expect(sdLogJacobian(det)).toBeCloseTo(stdOf([1, 1, 0.5, 0.75, 1, 1, 1].map(Math.log)), 6);
  });
});

function stdOf(xs: number[]): number {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
}

// ------------------------------------------------------------------------------------------------------
// Cross-checks against the plugins' Python references.

const ref = new MetricReference();
afterAll(() => ref.cleanup());

/** Largest |ours − ref| over labels, after checking both agree on which labels are NaN. */
function maxLabelDiff(ours: Record<string, number>, reference: Record<string, number | null>): number {
  let worst = 0;
  for (const [label, v] of Object.entries(ours)) {
    const r = reference[label];
    expect(Number.isNaN(v), `label ${label}: ours ${v}, scipy ${r}`).toBe(r === null);
    if (r !== null) worst = Math.max(worst, Math.abs(v - r));
  }
  return worst;
}

/** A smooth random field made on a 4× coarser grid and upsampled (cheap at full resolution). */
function randomField(dims: Vec3, maxDisplacementCoarse: number, seed: number): Float32Array {
  const coarse: Vec3 = [Math.ceil(dims[0] / 4), Math.ceil(dims[1] / 4), Math.ceil(dims[2] / 4)];
  return upsampleField(smoothRandomField(coarse, { maxDisplacement: maxDisplacementCoarse, smoothness: 2, seed }), coarse, dims);
}

/** Sub-block [lo, hi) of a label map. */
function cropVolume(data: Int32Array, dims: Vec3, lo: Vec3, hi: Vec3): { data: Int32Array; dims: Vec3 } {
  const out: Vec3 = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
  const res = new Int32Array(out[0] * out[1] * out[2]);
  for (let k = 0, o = 0; k < out[2]; k++) for (let j = 0; j < out[1]; j++) for (let i = 0; i < out[0]; i++, o++) res[o] = data[voxelIndex(dims, lo[0] + i, lo[1] + j, lo[2] + k)];
  return { data: res, dims: out };
}

const agreement: Record<string, number> = {};
afterAll(() => { if (Object.keys(agreement).length) console.log('[metrics tests] max |TypeScript − scipy|:', JSON.stringify(agreement)); });

function crossCheckLabels(name: string, fixed: Int32Array, warped: Int32Array, dims: Vec3, spacing: readonly number[], labels: number[]) {
  const inputs = { dims, fixedLabels: fixed, warpedLabels: warped, spacing };
  // One interpreter start for the four (importing scipy costs about a second).
  const [dRef, hRef, lRef, vRef] = ref.run([
    { plugin: diceDescriptor, options: { labels }, inputs }, { plugin: hd95Descriptor, options: { labels }, inputs },
    { plugin: l2rHd95Descriptor, options: { labels }, inputs }, { plugin: l2rHd95Descriptor, factory: 'voxel_boundary_reference', options: { labels }, inputs },
  ]);

  const d = dice(fixed, warped, labels);
  agreement[`${name} dice`] = maxLabelDiff(d.perLabel, answerPerLabel(dRef));
  expect(agreement[`${name} dice`]).toBeLessThan(1e-4);
  expect(d.mean).toBeCloseTo(dRef.value!, 10);

  const h = hd95(fixed, warped, dims, spacing, labels);
  agreement[`${name} hd95 (mm)`] = maxLabelDiff(h.perLabel, answerPerLabel(hRef));
  expect(agreement[`${name} hd95 (mm)`]).toBeLessThan(1e-9); // exact EDT on both sides
  expect(h.mean).toBeCloseTo(hRef.value!, 9);

  // l2r-hd95 against Learn2Reg's compute_hd95 over DeepMind surface-distance itself: the same numbers
  const l = l2rHd95(fixed, warped, dims, labels);
  agreement[`${name} l2r-hd95 (vox)`] = maxLabelDiff(l.perLabel, answerPerLabel(lRef));
  expect(agreement[`${name} l2r-hd95 (vox)`]).toBe(0);
  expect(l.mean).toBeCloseTo(lRef.value!, 12);
  const v = voxelBoundaryHd95(fixed, warped, dims, labels);
  agreement[`${name} voxel-boundary hd95 (vox)`] = maxLabelDiff(v.perLabel, answerPerLabel(vRef));
  expect(agreement[`${name} voxel-boundary hd95 (vox)`]).toBeLessThan(1e-9);
  return { dice: d, hd95: h };
}

function crossCheckJacobian(name: string, field: Float32Array, dims: Vec3) {
  const det = jacobianDeterminant(field, dims);
  const inputs = { dims, field };
  const [detRef, nonpositive, negative, sdlogj, l2rSdlogj] = ref.run([
    { python: { module: 'llmed.metrics_ref', factory: 'jacobian_compare' }, inputs: { dims, field, det } },
    ...[nonpositiveDescriptor, negativeDescriptor, sdlogjDescriptor, l2rSdlogjDescriptor].map((d) => ({ plugin: d, inputs })),
  ]);
  agreement[`${name} det J`] = detRef.maxAbsDiff!;
  expect(detRef.maxAbsDiff).toBeLessThan(1e-4);
  expect(nonpositiveJacobianPercent(det)).toBeCloseTo(nonpositive.value!, 4);
  expect(negativeJacobianPercent(det)).toBeCloseTo(negative.value!, 4);
  agreement[`${name} sdlogj`] = Math.abs(sdLogJacobian(det) - sdlogj.value!);
  agreement[`${name} l2r-sdlogj`] = Math.abs(l2rSdLogJacobian(det, dims) - l2rSdlogj.value!);
  expect(agreement[`${name} sdlogj`]).toBeLessThan(1e-4);
  expect(agreement[`${name} l2r-sdlogj`]).toBeLessThan(1e-4);
  return { det, reference: { nonpositive_percent: nonpositive.value! } };
}

describe.skipIf(!hasPython)('cross-check against numpy/scipy: synthetic', () => {
  it('random blobs on an anisotropic grid, with an absent label', () => {
    const dims: Vec3 = [40, 36, 24];
    const a = ball(dims, [14, 15, 10], 9, 1), b = ball(dims, [18, 17, 11], 8, 1);
    const a2 = ball(dims, [28, 20, 12], 6, 2), b2 = ball(dims, [26, 21, 14], 7, 2);
    for (let q = 0; q < a.length; q++) { if (a2[q]) a[q] = 2; if (b2[q]) b[q] = 2; }
    crossCheckLabels('blobs', a, b, dims, [0.7, 1.3, 2.9], [1, 2, 3]);
  });

  it('a folding random field: det J, folding %, SDlogJ, l2r-SDlogJ', () => {
    const dims: Vec3 = [40, 36, 24];
    const field = randomField(dims, 2.5, 11);
    const { reference } = crossCheckJacobian('folding field', field, dims);
    expect(reference.nonpositive_percent).toBeGreaterThan(0); // the case is meant to fold
  });

  it('endpoint error against a true field, whole grid and inside a label mask, anisotropic spacing', () => {
    const dims: Vec3 = [40, 36, 24];
    const spacing = [0.7, 1.3, 2.9];
    const truth = randomField(dims, 2, 5);
    const predicted = randomField(dims, 2, 6);
    const mask = ball(dims, [20, 18, 12], 9, 3);
    const inputs = { dims, spacing, field: predicted, groundTruthField: truth };
    const epeRef = ref.run([
      { plugin: epeDescriptor, options: { region: 'all' }, inputs },
      { plugin: epeDescriptor, options: { region: 'foreground' }, inputs: { ...inputs, fixedLabels: mask } },
    ]);
    const all = endpointError(predicted, truth, dims, spacing);
    const inside = endpointError(predicted, truth, dims, spacing, mask);
    agreement['endpoint error (mm)'] = Math.max(Math.abs(all - epeRef[0].value!), Math.abs(inside - epeRef[1].value!));
    expect(agreement['endpoint error (mm)']).toBeLessThan(1e-9);
    expect(all).toBeGreaterThan(0.1);
    expect(inside).not.toBe(all);
    expect(endpointError(truth, truth, dims, spacing)).toBe(0);
  });
});

describe.skipIf(!hasPython || !hasSharedData)('cross-check against numpy/scipy: real label maps', () => {
  it('brain aseg 160×192×224 (1 mm) vs a copy warped by a smooth random field, 30 evaluation labels', async () => {
    const aseg = await readLabelMap(shared('brain/vxm_subject_aseg.nii.gz'));
    const dims = aseg.dims;
    const field = randomField(dims, 1, 7);
    const warped = warpNearest(aseg.data, dims, field, dims);
    const r = crossCheckLabels('brain', aseg.data, warped, dims, aseg.spacing, ASEG_EVAL_LABELS);
    expect(r.dice.mean).toBeGreaterThan(0.5);
    expect(r.dice.mean).toBeLessThan(1);
    crossCheckJacobian('brain field', field, dims);
  }, REAL_DATA_TIMEOUT_MS);

  it('abdomen CT labels 122×101×30 at 3 mm, all labels present', async () => {
    const seg = await readLabelMap(shared('abdomen/example_seg.nii.gz'));
    expect(seg.spacing.map((s) => Math.round(s * 100) / 100)).toEqual([3, 3, 3]);
    const field = randomField(seg.dims, 0.8, 5);
    const warped = warpNearest(seg.data, seg.dims, field, seg.dims);
    crossCheckLabels('abdomen', seg.data, warped, seg.dims, seg.spacing, presentLabels(seg.data));
  }, REAL_DATA_TIMEOUT_MS);

  it('knee labels at 0.7 × 0.365 × 0.365 mm (anisotropic), central block', async () => {
    const knee = await readLabelMap(shared('knee-labels/OAI_ZIB-UQ_9001104_label.nii.gz'));
    const block = cropVolume(knee.data, knee.dims, [20, 100, 100], [144, 310, 280]);
    const field = randomField(block.dims, 1, 9);
    const warped = warpNearest(block.data, block.dims, field, block.dims);
    crossCheckLabels('knee', block.data, warped, block.dims, knee.spacing, [1, 2, 3, 4, 5, 6]);
  }, REAL_DATA_TIMEOUT_MS);
});
