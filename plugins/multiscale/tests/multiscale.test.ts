// The multiscale decoder's shape rule: the stage-scale check moved here from the Python constructor
// (bridge/python/tests/test_model_nn.py, test_decoder_rejects_stage_scales_that_do_not_halve), since the
// TypeScript shape rule is the one place where shapes are checked.
import { describe, expect, it } from 'vitest';
import { ShapeMismatch, type ShapeInputs } from '@llmed/core';
import { decoderExampleInputs, descriptor } from '../src/index.ts';

describe('multiscale shape rule', () => {
  const options = { rescaleUpsampledField: true, flowHidden: 4, negativeSlope: 0.2, init: 'he' as const, fieldScale: 1 };
  const ctx = { workspaceRoot: process.cwd() };

  it('gives fields at every stage after the first', () => {
    const out = descriptor.shape!(decoderExampleInputs, options, ctx);
    expect(out).toMatchObject({ type: 'fields', steps: 1 });
    expect((out as { fields: { scale: number }[] }).fields.map((f) => f.scale)).toEqual([4, 2, 1]);
  });

  it('with fieldScale 2 ends the stages at 1/2 and still gives a full-resolution field last', () => {
    const stages = decoderExampleInputs.stages!.stages;
    const half: ShapeInputs = { ...decoderExampleInputs, stages: { type: 'stages', stages: stages.slice(0, 3) } };
    const out = descriptor.shape!(half, { ...options, fieldScale: 2 }, ctx) as { fields: { scale: number; spatial: number[] }[] };
    expect(out.fields.map((f) => f.scale)).toEqual([4, 2, 1]);
    expect(out.fields.at(-1)!.spatial).toEqual(decoderExampleInputs.image!.spatial);
    // each setting names the other when the stages do not end where it needs them
    expect(() => descriptor.shape!(half, options, ctx)).toThrow(/finest stage is 1\/2.*fieldScale: 2/);
    expect(() => descriptor.shape!(decoderExampleInputs, { ...options, fieldScale: 2 }, ctx)).toThrow(/fieldScale 2 needs the stages to end at 1\/2; they end at 1\/1/);
  });

  it('rejects stage scales that do not halve', () => {
    const stages = decoderExampleInputs.stages!.stages;
    const inputs: ShapeInputs = { ...decoderExampleInputs, stages: { type: 'stages', stages: [stages[0], stages[2], stages[3]] } };
    expect(() => descriptor.shape!(inputs, options, ctx)).toThrow(ShapeMismatch);
    expect(() => descriptor.shape!(inputs, options, ctx)).toThrow(/halve/);
  });
});
