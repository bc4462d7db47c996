import { describe, expect, it } from 'vitest';
import { abdomenMrCtPairs, mulberry32, oaiPairs, oasisValidationPairs, seededShuffle, srRegSplit, type Pair } from '../src/index.ts';
import { expectLlmedError } from './helpers.ts';

const names = (prefix: string, n: number, from = 1) => Array.from({ length: n }, (_, i) => `${prefix}${String(i + from).padStart(4, '0')}`);
const key = (p: Pair) => `${p.moving}->${p.fixed}`;

describe('oaiPairs', () => {
  const scans = names('OAI_', 300);
  const p = oaiPairs(scans, { labels: (s) => `${s}_seg` });

  it('train: all 200·199 = 39,800 ordered pairs of the first 200 scans', () => {
    expect(p.train).toHaveLength(39_800);
    expect(new Set(p.train.map(key)).size).toBe(39_800);
    const trainSet = new Set(scans.slice(0, 200));
    const bad = p.train.filter((q) => q.moving === q.fixed || !trainSet.has(q.moving) || !trainSet.has(q.fixed));
    expect(bad).toEqual([]);
    expect(p.train[0]).toEqual({ moving: 'OAI_0001', fixed: 'OAI_0002', movingLabels: 'OAI_0001_seg', fixedLabels: 'OAI_0002_seg' });
  });

  it('test: 50 moving x 40 fixed from the remaining scans, disjoint from training', () => {
    expect(p.test).toHaveLength(2000);
    const fixed = new Set(p.test.map((q) => q.fixed));
    const moving = new Set(p.test.map((q) => q.moving));
    expect([...fixed]).toEqual(scans.slice(200, 240));
    expect([...moving]).toEqual(scans.slice(240, 290));
    for (const s of [...fixed, ...moving]) expect(scans.indexOf(s)).toBeGreaterThanOrEqual(200);
  });

  it('val: the ordered pairs of the 2 scans after the first 290, none with only 290', () => {
    expect(p.val).toEqual([
      { moving: 'OAI_0291', fixed: 'OAI_0292', movingLabels: 'OAI_0291_seg', fixedLabels: 'OAI_0292_seg' },
      { moving: 'OAI_0292', fixed: 'OAI_0291', movingLabels: 'OAI_0292_seg', fixedLabels: 'OAI_0291_seg' },
    ]);
    expect(oaiPairs(names('x', 290)).val).toBeUndefined();
  });

  it('too few scans or duplicates are clear errors', async () => {
    await expectLlmedError(() => oaiPairs(names('x', 289)), 'data', [/at least 290 scans/, /got 289/]);
    await expectLlmedError(() => oaiPairs([...names('x', 289), 'x0001']), 'data', [/'x0001' is listed twice/]);
  });
});

describe('oasisValidationPairs', () => {
  const val = names('OASIS_', 20, 438);

  it("Learn2Reg variant: consecutive subjects, fixed i, moving i+1 (19 pairs)", () => {
    const p = oasisValidationPairs(val);
    expect(p.test).toHaveLength(19);
    expect(p.test[0]).toEqual({ fixed: 'OASIS_0438', moving: 'OASIS_0439' });
    expect(p.test[18]).toEqual({ fixed: 'OASIS_0456', moving: 'OASIS_0457' });
    expect(p.train).toEqual([]);
  });

  it('LLaMA-Reg variant: all 20·19 = 380 ordered pairs', () => {
    const p = oasisValidationPairs(val, { variant: 'all-ordered' });
    expect(p.test).toHaveLength(380);
    expect(new Set(p.test.map(key)).size).toBe(380);
    expect(oasisValidationPairs(val, { variant: 'llama-reg' }).test).toEqual(p.test);
  });

  it('optional training scans give all ordered training pairs; overlap is refused', async () => {
    const p = oasisValidationPairs(val, { training: names('OASIS_', 5) });
    expect(p.train).toHaveLength(20);
    await expectLlmedError(() => oasisValidationPairs(val, { training: ['OASIS_0440'] }), 'data', [/both training and validation/]);
    await expectLlmedError(() => oasisValidationPairs(['a']), 'data', [/at least 2 validation scans/]);
  });
});

describe('abdomenMrCtPairs', () => {
  it('10 held-out MR_i -> CT_i test pairs; 36 x 45 = 1620 training pairs', () => {
    const mrs = names('MR_', 46);
    const cts = names('CT_', 55);
    const p = abdomenMrCtPairs(mrs, cts);
    expect(p.test).toHaveLength(10);
    p.test.forEach((q, i) => expect(q).toEqual({ moving: mrs[i], fixed: cts[i] }));
    expect(p.train).toHaveLength(1620);
    const held = new Set([...mrs.slice(0, 10), ...cts.slice(0, 10)]);
    const bad = p.train.filter((q) => held.has(q.moving) || held.has(q.fixed) || !q.moving.startsWith('MR_') || !q.fixed.startsWith('CT_'));
    expect(bad).toEqual([]);
    expect(new Set(p.train.map(key)).size).toBe(1620);
  });

  it('too few scans is a clear error', async () => {
    await expectLlmedError(() => abdomenMrCtPairs(names('MR_', 10), names('CT_', 20)), 'data', [/more than 10 MR and 10 CT/, /got 10 MR and 20 CT/]);
  });
});

describe('srRegSplit and the seeded PRNG', () => {
  const subjects = names('SR_', 180).map((id) => ({ id, mr: `${id}_mr.nii.gz`, ct: `${id}_ct.nii.gz` }));

  it('mulberry32 is deterministic and uniform enough', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 10000 }, () => a());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.48);
    expect(mean).toBeLessThan(0.52);
    expect(seededShuffle([1, 2, 3, 4, 5, 6, 7, 8], 1)).toEqual(seededShuffle([1, 2, 3, 4, 5, 6, 7, 8], 1));
    expect(seededShuffle([1, 2, 3, 4, 5, 6, 7, 8], 1)).not.toEqual(seededShuffle([1, 2, 3, 4, 5, 6, 7, 8], 2));
  });

  it('150/10/20 split, deterministic for a seed, independent of input order', () => {
    const s = srRegSplit(subjects, 7);
    expect(s.subjects.train).toHaveLength(150);
    expect(s.subjects.val).toHaveLength(10);
    expect(s.subjects.test).toHaveLength(20);
    expect(new Set([...s.subjects.train, ...s.subjects.val, ...s.subjects.test]).size).toBe(180);
    const again = srRegSplit([...subjects].reverse(), 7);
    expect(again.subjects).toEqual(s.subjects);
    expect(srRegSplit(subjects, 8).subjects.test).not.toEqual(s.subjects.test);
  });

  it('test subjects paired into 10 MR(a) -> CT(b) pairs; train has all inter-subject pairs', () => {
    const s = srRegSplit(subjects, 7);
    expect(s.test).toHaveLength(10);
    s.test.forEach((q, m) => {
      expect(q.moving).toBe(`${s.subjects.test[2 * m]}_mr.nii.gz`);
      expect(q.fixed).toBe(`${s.subjects.test[2 * m + 1]}_ct.nii.gz`);
    });
    expect(s.val).toHaveLength(5);
    expect(s.train).toHaveLength(150 * 149);
    // plain ids work too
    const ids = srRegSplit(subjects.map((x) => x.id), 7);
    expect(ids.test[0]).toEqual({ moving: s.subjects.test[0], fixed: s.subjects.test[1] });
  });

  it('wrong subject counts are clear errors', async () => {
    await expectLlmedError(() => srRegSplit(subjects.slice(0, 179), 1), 'data', [/exactly 180 subjects, got 179 \(too few\)/]);
    expect(srRegSplit(subjects.slice(0, 12), 1, { counts: { train: 6, val: 2, test: 4 } }).test).toHaveLength(2);
  });
});
