/**
 * Dice per label, the maths of the `dice` metric: 2|A∩B| / (|A| + |B|), A = {fixed == l}, B = {warped == l}.
 */
import { nanMean, type LabelScores } from '@llmed/imaging';

/** How a label absent from both maps is scored by Dice. */
export type AbsentLabelPolicy = 'nan' | 'zero';

/** label → slot index, through a flat table when the ids are small non-negative integers (the usual case). */
function slotLookup(labels: readonly number[]): (l: number) => number {
  const max = labels.reduce((m, l) => Math.max(m, l), 0);
  if (labels.every((l) => Number.isInteger(l) && l >= 0) && max < 1 << 16) {
    const table = new Int32Array(max + 1).fill(-1);
    labels.forEach((l, s) => { table[l] = s; });
    return (l) => (l >= 0 && l <= max ? table[l] : -1);
  }
  const map = new Map(labels.map((l, s) => [l, s] as const));
  return (l) => map.get(l) ?? -1;
}

/**
 * Dice per label: 2|A∩B| / (|A| + |B|), A = {fixed == l}, B = {warped == l}.
 * A label absent from both maps (0/0) scores NaN and is left out of the mean (`absentAs: 'nan'`, the
 * default); `absentAs: 'zero'` scores it 0 and keeps it in the mean, as LLaMA-Reg's code does (its
 * denominator is clamped at machine epsilon), which drags the mean down. One pass over the voxels.
 */
export function dice(fixed: ArrayLike<number>, warped: ArrayLike<number>, labels: readonly number[], opts: { absentAs?: AbsentLabelPolicy } = {}): LabelScores {
  if (fixed.length !== warped.length) throw new Error(`dice: label maps differ in size (${fixed.length} vs ${warped.length} voxels)`);
  const slot = slotLookup(labels);
  const sizeA = new Float64Array(labels.length), sizeB = new Float64Array(labels.length), both = new Float64Array(labels.length);
  for (let q = 0; q < fixed.length; q++) {
    const la = fixed[q], lb = warped[q];
    const sa = slot(la);
    if (sa >= 0) {
      sizeA[sa]++;
      if (la === lb) { both[sa]++; sizeB[sa]++; continue; }
    }
    const sb = slot(lb);
    if (sb >= 0) sizeB[sb]++;
  }
  const absentAs = opts.absentAs ?? 'nan';
  const perLabel: Record<string, number> = {};
  labels.forEach((l, s) => {
    const denom = sizeA[s] + sizeB[s];
    perLabel[String(l)] = denom > 0 ? (2 * both[s]) / denom : absentAs === 'zero' ? 0 : NaN;
  });
  return { perLabel, mean: nanMean(Object.values(perLabel)) };
}
