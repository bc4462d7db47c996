/**
 * dice — Dice overlap of fixed and warped moving labels, per label and mean
 *
 * Dice_l = 2|A∩B| / (|A|+|B|), A = {fixed == l}, B = {warped moving == l}; value = mean over labels.
 * A label absent from both maps is NaN and left out of the mean (`absentAs: 'nan'`), or scored 0 and kept
 * (`absentAs: 'zero'`, LLaMA-Reg's code). Labels: the `labels` option, else the experiment's list, else
 * every non-zero label present in either map.
 */
import { definePlugin, pluginModule } from '@llmed/core';
import { chooseLabels, LABELS_OPTION_SCHEMA, dice, requireLabelMaps, type AbsentLabelPolicy, type MetricInput, type MetricResult, type MetricRuntime } from '@llmed/imaging';

export interface DiceOptions { labels?: number[]; absentAs: AbsentLabelPolicy }

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
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
