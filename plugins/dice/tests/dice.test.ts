/** dice: the analytic cases of its definition (cases.json holds the ones checked in both languages). */
import { describe, expect, it } from 'vitest';
import { presentLabels } from '@llmed/imaging';
import { dice } from '../src/index.ts';

describe('Dice', () => {
  const fixed = Int32Array.from([0, 1, 1, 2, 2, 2, 0, 0]);
  const warped = Int32Array.from([0, 1, 2, 2, 2, 0, 0, 5]);

  it('2|A∩B|/(|A|+|B|) per label; absent in both → NaN and out of the mean', () => {
    const r = dice(fixed, warped, [1, 2, 3]);
    expect(r.perLabel['1']).toBeCloseTo((2 * 1) / (2 + 1), 12);
    expect(r.perLabel['2']).toBeCloseTo((2 * 2) / (3 + 3), 12);
    expect(r.perLabel['3']).toBeNaN();
    expect(r.mean).toBeCloseTo((2 / 3 + 2 / 3) / 2, 12);
  });

  it("absentAs 'zero' (LLaMA-Reg) scores the absent label 0 and keeps it in the mean", () => {
    const r = dice(fixed, warped, [1, 2, 3], { absentAs: 'zero' });
    expect(r.perLabel['3']).toBe(0);
    expect(r.mean).toBeCloseTo((2 / 3 + 2 / 3 + 0) / 3, 12);
  });

  it('label present in one map only scores 0; big label ids go through the map path', () => {
    expect(dice(fixed, warped, [5]).perLabel['5']).toBe(0);
    expect(dice(Int32Array.from([70000, 0]), Int32Array.from([70000, 70000]), [70000]).perLabel['70000']).toBeCloseTo(2 / 3, 12);
    expect(presentLabels(fixed, warped)).toEqual([1, 2, 5]);
  });
});
