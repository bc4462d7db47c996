// The multiscale decoder's shape rule: the stage-scale check moved here from the Python constructor
// (bridge/python/tests/test_model_nn.py, test_decoder_rejects_stage_scales_that_do_not_halve), since the
// TypeScript shape rule is the one place where shapes are checked.
import { describe, expect, it } from 'vitest';
import { ShapeMismatch, type ShapeInputs } from '@llmed/core';
import { decoderExampleInputs, descriptor } from '../src/index.ts';

describe('multiscale shape rule', () => {
  const options = { rescaleUpsampledField: true, flowHidden: 4, negativeSlope: 0.2, init: 'he' as const };
  const ctx = { workspaceRoot: process.cwd() };

  it('gives fields at every stage after the first', () => {
    const out = descriptor.shape!(decoderExampleInputs, options, ctx);
    expect(out).toMatchObject({ type: 'fields', steps: 1 });
    expect((out as { fields: { scale: number }[] }).fields.map((f) => f.scale)).toEqual([4, 2, 1]);
  });

  it('rejects stage scales that do not halve', () => {
    const stages = decoderExampleInputs.stages!.stages;
    const inputs: ShapeInputs = { ...decoderExampleInputs, stages: { type: 'stages', stages: [stages[0], stages[2], stages[3]] } };
    expect(() => descriptor.shape!(inputs, options, ctx)).toThrow(ShapeMismatch);
    expect(() => descriptor.shape!(inputs, options, ctx)).toThrow(/halve/);
  });
});
