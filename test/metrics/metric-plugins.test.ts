/**
 * The eight Metric plugins: each computes what its own function (plugins/<id>/src/) computes, reports its
 * unit and direction, honours its options, and refuses a missing input with one clear `data` error.
 */
import { describe, expect, it } from 'vitest';
import { pluginOptions, type PluginDescriptor } from '@llmed/core';
import { descriptor as diceDescriptor, dice } from '@llmed/plugin-dice';
import { descriptor as hd95Descriptor, hd95 } from '@llmed/plugin-hd95';
import { descriptor as l2rHd95Descriptor, l2rHd95 } from '@llmed/plugin-l2r-hd95';
import { descriptor as nonpositiveDescriptor, nonpositiveJacobianPercent } from '@llmed/plugin-jacobian-nonpositive';
import { descriptor as negativeDescriptor, negativeJacobianPercent } from '@llmed/plugin-jacobian-negative';
import { descriptor as sdlogjDescriptor, sdLogJacobian } from '@llmed/plugin-sdlogj';
import { descriptor as l2rSdlogjDescriptor, l2rSdLogJacobian } from '@llmed/plugin-l2r-sdlogj';
import { descriptor as epeDescriptor, endpointError } from '@llmed/plugin-endpoint-error';
import { jacobianDeterminant, type MetricInput, type MetricResult, type MetricRuntime, type Vec3 } from '@llmed/imaging';
import { expectLlmedError } from '../../packages/imaging/tests/helpers.ts';

const dims: Vec3 = [12, 10, 8];
const n = dims[0] * dims[1] * dims[2];
const spacing = [0.8, 1, 2.5];

function block(lo: Vec3, hi: Vec3, label: number, into: Int32Array): Int32Array {
  for (let k = lo[2]; k < hi[2]; k++) for (let j = lo[1]; j < hi[1]; j++) for (let i = lo[0]; i < hi[0]; i++) into[i + dims[0] * (j + dims[1] * k)] = label;
  return into;
}

const fixedLabels = block([6, 2, 2], [10, 8, 6], 2, block([1, 1, 1], [5, 6, 5], 1, new Int32Array(n)));
const warpedLabels = block([7, 2, 3], [11, 7, 6], 2, block([2, 1, 1], [6, 6, 6], 1, new Int32Array(n)));
const field = new Float32Array(3 * n);
// u_x steps 0 → −2 → −4 across i = 5..7: det J = 0 at i = 5 and 7, −1 at i = 6 (central differences).
for (let q = 0; q < n; q++) { const i = q % dims[0]; field[q] = i === 6 ? -2 : i >= 7 ? -4 : 0; }
const input: MetricInput = { fixedLabels, warpedLabels, field, dims, spacing, labels: [] };

const compute = (d: PluginDescriptor<any>, inp: MetricInput, options: Record<string, unknown> = {}): MetricResult =>
  (d.runtime as MetricRuntime).compute(inp, pluginOptions(d, options, d.id));

describe('Metric plugins', () => {
  it('are Metric plugins with a runtime.compute', () => {
    for (const d of [diceDescriptor, hd95Descriptor, l2rHd95Descriptor, nonpositiveDescriptor, negativeDescriptor, sdlogjDescriptor, l2rSdlogjDescriptor, epeDescriptor]) {
      expect(d.kind).toBe('Metric');
      expect(typeof (d.runtime as MetricRuntime).compute).toBe('function');
    }
  });

  it('dice: mean and per label over the labels present; absentAs and labels options', () => {
    const r = compute(diceDescriptor, input);
    const expected = dice(fixedLabels, warpedLabels, [1, 2]);
    expect(r).toEqual({ value: expected.mean, perLabel: expected.perLabel, unit: 'fraction', higherIsBetter: true });
    const withAbsent = compute(diceDescriptor, input, { labels: [1, 2, 9] });
    expect(withAbsent.perLabel!['9']).toBeNaN();
    expect(withAbsent.value).toBe(expected.mean);
    const zero = compute(diceDescriptor, input, { labels: [1, 2, 9], absentAs: 'zero' });
    expect(zero.value).toBeCloseTo((2 * expected.mean) / 3, 12);
    // The experiment's label list is used when the options give none.
    expect(Object.keys(compute(diceDescriptor, { ...input, labels: [2] }).perLabel!)).toEqual(['2']);
  });

  it('hd95 in mm with the spacing; l2r-hd95 in voxels', () => {
    const mm = compute(hd95Descriptor, input);
    expect(mm.value).toBe(hd95(fixedLabels, warpedLabels, dims, spacing, [1, 2]).mean);
    expect(mm.unit).toBe('mm');
    expect(mm.higherIsBetter).toBe(false);
    const vox = compute(l2rHd95Descriptor, input);
    expect(vox.value).toBe(l2rHd95(fixedLabels, warpedLabels, dims, [1, 2]).mean);
    expect(vox.unit).toBe('voxel');
  });

  it('endpoint-error: mm against the true field, inside the fixed labels by default; refuses a pair without one', async () => {
    const truth = new Float32Array(3 * n);
    const r = compute(epeDescriptor, { ...input, groundTruthField: truth });
    expect(r).toEqual({ value: endpointError(field, truth, dims, spacing, fixedLabels), unit: 'mm', higherIsBetter: false });
    expect(compute(epeDescriptor, { ...input, groundTruthField: truth }, { region: 'all' }).value).toBe(endpointError(field, truth, dims, spacing));
    // Off by −2 voxels along i at i = 6 (0.8 mm voxels): 1.6 mm there.
    expect(compute(epeDescriptor, { ...input, fixedLabels: undefined, groundTruthField: truth }).value).toBeCloseTo(((1.6 + 3.2 * 5) * dims[1] * dims[2]) / n, 6);
    expect((epeDescriptor.runtime as MetricRuntime).needsGroundTruth).toBe(true);
    await expectLlmedError(() => compute(epeDescriptor, input), 'data', ['endpoint-error needs the true displacement field']);
  });

  it('Jacobian metrics on a field that folds', () => {
    const det = jacobianDeterminant(field, dims);
    const nonpositive = compute(nonpositiveDescriptor, input);
    const negative = compute(negativeDescriptor, input);
    expect(nonpositive.value).toBe(nonpositiveJacobianPercent(det));
    expect(negative.value).toBe(negativeJacobianPercent(det));
    expect(nonpositive.value).toBeGreaterThan(negative.value); // the field has det J = 0 voxels
    expect(negative.value).toBeGreaterThan(0);
    expect(nonpositive.unit).toBe('%');
    expect(compute(sdlogjDescriptor, input).value).toBe(sdLogJacobian(det));
    expect(compute(l2rSdlogjDescriptor, input).value).toBe(l2rSdLogJacobian(det, dims, { crop: 2 }));
    expect(compute(l2rSdlogjDescriptor, input, { crop: 0 }).value).toBe(l2rSdLogJacobian(det, dims, { crop: 0 }));
  });

  it('a missing input is one clear data error naming what to pass', async () => {
    const noLabels: MetricInput = { field, dims, spacing, labels: [] };
    await expectLlmedError(() => compute(diceDescriptor, noLabels), 'data', ['dice needs label maps: pass --moving-labels and --fixed-labels']);
    await expectLlmedError(() => compute(hd95Descriptor, noLabels), 'data', ['hd95 needs label maps']);
    await expectLlmedError(() => compute(l2rHd95Descriptor, noLabels), 'data', ['l2r-hd95 needs label maps']);
    const noField: MetricInput = { fixedLabels, warpedLabels, dims, spacing, labels: [] };
    for (const d of [nonpositiveDescriptor, negativeDescriptor, sdlogjDescriptor, l2rSdlogjDescriptor]) {
      await expectLlmedError(() => compute(d, noField), 'data', [`${d.id} needs the displacement field`]);
    }
    await expectLlmedError(() => compute(diceDescriptor, { ...input, warpedLabels: new Int32Array(5) }), 'data', ['warped label map has 5 voxels']);
    await expectLlmedError(() => compute(sdlogjDescriptor, { ...input, field: new Float32Array(n) }), 'data', [`needs ${3 * n}`]);
    await expectLlmedError(() => compute(hd95Descriptor, { ...input, spacing: [1, 0, 1] }), 'data', ['spacing must be three positive numbers']);
  });
});
