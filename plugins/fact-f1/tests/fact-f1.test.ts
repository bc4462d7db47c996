/**
 * fact-f1 on reports in the stand-in's own sentences: identical reports score 1, a missed and an invented
 * finding cost recall and precision by their atoms (counted from the parser, the one implementation), an
 * unreadable sentence is counted, not scored, and the registry resolves the plugin.
 */
import { describe, expect, it } from 'vitest';
import { factAtoms, parseReport } from '@llmed/reports';
import { factF1Metric } from '../src/index.ts';

const ref = 'The aorta shows bright arterial-phase enhancement. A calculus is present in the left kidney. The pancreas contains a high-attenuation focal lesion of 20 mm. No abnormality of the liver is seen.';
const input = (candidates: string[], references: string[]) => ({ samples: candidates.map((candidate, i) => ({ candidate, references: [references[i]] })) });

describe('fact-f1', () => {
  it('is 1 for the reference itself (and for a paraphrase the grammar also writes)', () => {
    const r = factF1Metric(input([ref], [ref]));
    expect(r.value).toBe(1);
    expect(r.perSample).toEqual([1]);
    expect(r.counts).toEqual({ unparsed: 0 });
  });

  it('a missed stone and an invented effusion cost recall and precision by their atoms', () => {
    const cand = 'The aorta shows bright arterial-phase enhancement. The pancreas contains a high-attenuation focal lesion of 20 mm. No abnormality of the liver is seen. There is a small right pleural effusion.';
    const atoms = (t: string) => new Set(factAtoms(parseReport(t).facts).map((a) => `${a.category}:${a.key}`));
    const a = atoms(ref), b = atoms(cand);
    const tp = [...b].filter((x) => a.has(x)).length, fp = b.size - tp, fn = [...a].filter((x) => !b.has(x)).length;
    expect(fn).toBeGreaterThan(0);
    const r = factF1Metric(input([cand], [ref]));
    expect(r.value).toBeCloseTo((2 * tp) / (2 * tp + fp + fn), 12);
    expect(r.outputs['fact-f1.stone']).toBe(0);
    expect(r.outputs['fact-f1.phase']).toBe(1);
  });

  it('counts sentences it cannot read and gives them no credit', () => {
    const r = factF1Metric(input(['Lorem ipsum dolor sit amet.'], [ref]));
    expect(r.value).toBe(0);
    expect(r.counts!.unparsed).toBe(1);
  });
});
