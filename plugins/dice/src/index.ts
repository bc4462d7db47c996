/**
 * dice — Dice overlap of fixed and warped moving labels, per label and mean
 *
 * Dice_l = 2|A∩B| / (|A|+|B|), A = {fixed == l}, B = {warped moving == l}; value = mean over labels.
 * A label absent from both maps is NaN and left out of the mean (`absentAs: 'nan'`), or scored 0 and kept
 * (`absentAs: 'zero'`, LLaMA-Reg's code). Labels: the `labels` option, else the experiment's list, else
 * every non-zero label present in either map.
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';
import { chooseLabels, LABELS_OPTION_SCHEMA, requireLabelMaps, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';
import { dice, type AbsentLabelPolicy } from './dice.ts';

export interface DiceOptions { labels?: number[]; absentAs: AbsentLabelPolicy }

export { dice, type AbsentLabelPolicy } from './dice.ts';

export const runtime: MetricRuntime<DiceOptions> = {
  needsLabels: true,
  compute(input: MetricInput, options: Partial<DiceOptions> = {}): MetricResult {
    const { fixed, warped, labels } = requireLabelMaps('dice', input);
    const r = dice(fixed, warped, chooseLabels(options.labels, labels, fixed, warped), { absentAs: options.absentAs ?? 'nan' });
    return { value: r.mean, perLabel: r.perLabel, unit: 'fraction', higherIsBetter: true };
  },
};

export const descriptor = definePlugin<DiceOptions>({
  id: 'dice',
  kind: 'Metric',
  summary: 'Dice overlap 2|A∩B|/(|A|+|B|) of fixed and warped labels, per label and mean',
  reference: 'LLaMA-Reg §1.7, MambaMorph §2.9 (spec); absent label: NaN here, 0 in LLaMA-Reg (absentAs)',
  options: {
    type: 'object',
    properties: {
      labels: LABELS_OPTION_SCHEMA,
      absentAs: { enum: ['nan', 'zero'], default: 'nan', description: "a label absent from both maps: 'nan' (left out of the mean) or 'zero' (LLaMA-Reg)" },
    },
  },
  python: pythonEntry(import.meta.url, '../python', 'llmed_dice', 'reference'),
  runtime,
  example: {
    // two boxes, the warped ones shifted along i and j: both labels overlap partly
    options: {},
    inputs: {
      fixedLabels: { shape: [6, 8, 10], boxes: [{ label: 1, lo: [1, 1, 1], hi: [4, 5, 6] }, { label: 2, lo: [2, 4, 5], hi: [5, 7, 9] }], dtype: 'int32' },
      warpedLabels: { shape: [6, 8, 10], boxes: [{ label: 1, lo: [1, 2, 2], hi: [4, 6, 6] }, { label: 2, lo: [2, 4, 6], hi: [5, 8, 10] }], dtype: 'int32' },
      spacing: [1, 1, 1],
    },
  },
});

export default pluginModule(descriptor);
