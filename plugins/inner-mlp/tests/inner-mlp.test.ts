// The shape rule is pure: an absent `out` means the input width in the output shape, and the options
// stay as given (the rule used to write `out` into them).
import { describe, expect, it } from 'vitest';
import { descriptor } from '../src/index.ts';

describe('inner-mlp shape rule', () => {
  const ctx = { workspaceRoot: process.cwd() };
  it('keeps the input width when `out` is absent, without writing it into the options', () => {
    const options = Object.freeze({ hidden: 16, activation: 'none' as const });
    expect(descriptor.shape!(descriptor.example.inputs, options, ctx)).toEqual({ type: 'tokens', length: 8, width: 64, grid: [2, 2, 2] });
    expect(options).not.toHaveProperty('out');
  });
  it('gives width `out` when it is set', () => {
    expect(descriptor.shape!(descriptor.example.inputs, { hidden: 16, out: 32, activation: 'none' }, ctx)).toMatchObject({ width: 32 });
  });
});
