/** The report grammar and its inverse, and fact-f1 on hand-written cases (no volumes needed). */
import { describe, expect, it } from 'vitest';
import { factF1, parseReport, Rng, sizeBin, TEMPLATES, writeFact, type Fact } from '@llmed/reports';

const FACTS: Fact[] = [
  { category: 'lesion', organ: 'liver', count: 1, sizeMm: 23, density: 'low' },
  { category: 'lesion', organ: 'kidney_left', count: 3, sizeMm: 9, density: 'high' },
  { category: 'lesion', organ: 'white_matter_right', count: 2, sizeMm: 14, density: 'low' },
  { category: 'stone', organ: 'urinary_bladder' },
  { category: 'stone', organ: 'gallbladder' },
  { category: 'effusion', side: 'left' },
  { category: 'effusion', side: 'both' },
  { category: 'enlargement', organ: 'spleen' },
  { category: 'enlargement', organ: 'ventricles' },
  { category: 'phase', phase: 'non-contrast' },
  { category: 'phase', phase: 'arterial' },
  { category: 'phase', phase: 'portal-venous' },
  { category: 'normal', organ: 'lung_right' },
  { category: 'normal', organ: 'ventricles' },
];

describe('report grammar', () => {
  it('writes every fact with every paraphrase and parses each back to the same fact', () => {
    const used = new Set<string>();
    for (const f of FACTS) {
      for (let s = 0; s < 40; s++) {
        const rng = new Rng(s);
        const text = writeFact(f, (xs) => rng.pick(xs), f.category === 'lesion' && f.organ.startsWith('white') ? 'MR' : 'CT');
        used.add(text.replace(/\d+/g, '#').split(' ').slice(0, 3).join(' '));
        const p = parseReport(text);
        expect(p.unparsed, text).toEqual([]);
        expect(p.facts, text).toEqual([f]);
      }
    }
    // Several paraphrases per category are actually produced.
    expect(used.size).toBeGreaterThanOrEqual(TEMPLATES.length - 6);
  });

  it('reads a whole report, and leaves sentences outside the grammar unparsed rather than guessing', () => {
    const p = parseReport('This is an arterial-phase study. There is a hypodense lesion in the liver, measuring 31 mm. The liver looks odd. Two hyperdense focal lesions are seen in the spleen; the largest is 12 mm.');
    expect(p.facts).toEqual([
      { category: 'phase', phase: 'arterial' },
      { category: 'lesion', organ: 'liver', count: 1, sizeMm: 31, density: 'low' },
      { category: 'lesion', organ: 'spleen', count: 2, sizeMm: 12, density: 'high' },
    ]);
    expect(p.unparsed).toEqual(['The liver looks odd.']);
  });

  it('bins sizes on the written millimetres', () => {
    expect([14, 15, 24, 25, 34, 35, 60].map((mm) => sizeBin(mm).id)).toEqual(['under-15', '15-24', '15-24', '25-34', '25-34', '35-plus', '35-plus']);
  });
});

describe('fact-f1', () => {
  it('scores atoms per category: the right lesion of the wrong size keeps organ, density and count', () => {
    const reference = 'There is a hypodense lesion in the liver, measuring 31 mm. The spleen is unremarkable.';
    const candidate = 'There is a hypodense lesion in the liver, measuring 12 mm. The spleen is enlarged.';
    const r = factF1([{ reference, candidate }]);
    expect(r.perCategory.lesion.f1).toBe(1);
    expect(r.perCategory['lesion-density'].f1).toBe(1);
    expect(r.perCategory['lesion-count'].f1).toBe(1);
    expect(r.perCategory['lesion-size']).toMatchObject({ tp: 0, fp: 1, fn: 1, f1: 0 });
    expect(r.perCategory.normal).toMatchObject({ tp: 0, fp: 0, fn: 1, recall: 0, precision: null, f1: 0 });
    expect(r.perCategory.enlargement).toMatchObject({ tp: 0, fp: 1, fn: 0, f1: 0 });
    expect(r.perCategory.stone.f1).toBeNull(); // nothing to score
    // overall: 5 reference atoms (4 of the lesion, 1 normal), 5 candidate atoms (4 of the lesion, 1 enlargement), 3 shared.
    expect(r.overall).toMatchObject({ tp: 3, fp: 2, fn: 2 });
    expect(r.overall.f1).toBeCloseTo(0.6, 12);
  });

  it('sums counts over samples (micro) and counts unparsed candidate sentences', () => {
    const r = factF1([
      { reference: [{ category: 'phase', phase: 'arterial' }], candidate: 'This is an arterial-phase study.' },
      { reference: [{ category: 'phase', phase: 'portal-venous' }], candidate: 'This is an arterial-phase study. Something else.' },
    ]);
    expect(r.perCategory.phase).toMatchObject({ tp: 1, fp: 1, fn: 1 });
    expect(r.perCategory.phase.f1).toBeCloseTo(0.5, 12);
    expect(r.unparsed).toBe(1);
  });
});
