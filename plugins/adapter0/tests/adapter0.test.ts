// The shape rule is pure: it returns the output shape and leaves the options as the composer filled them
// (it used to write the derived `hidden` into them; the Python factory derives that from its inputs now).
import { describe, expect, it } from 'vitest';
import { descriptor } from '../src/index.ts';

describe('adapter0 shape rule', () => {
  it('gives tokens of width `out` without touching the options', () => {
    const options = Object.freeze({ out: 64, norm: 'none' as const, activation: 'none' as const, negativeSlope: 0.2 });
    const out = descriptor.shape!(descriptor.example.inputs, options, { workspaceRoot: process.cwd() });
    expect(out).toEqual({ type: 'tokens', length: 8, width: 64, grid: [2, 2, 2] });
    expect(options).not.toHaveProperty('hidden');
  });
});
