/** bleu: the cases (nltk's numbers), and nltk / sacrebleu on pseudo-reports through the Python reference. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pluginOptions, readPluginCases } from '@llmed/core';
import { caseMismatches, metricInterval, metricPairedTest, randomReports, resultOutputs, REPORT_WORDS, runPythonReference, runTextCase, textInput } from '@llmed/text';
import { bleu, descriptor, type BleuOptions } from '../src/index.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..');
const cases = readPluginCases(dir);
const opts = (o: Partial<BleuOptions> = {}) => pluginOptions(descriptor, o, 'bleu') as unknown as BleuOptions;

describe('bleu', () => {
  it.each(cases.map((c) => [c.name, c] as const))('case: %s', async (_n, c) => {
    const { result } = await runTextCase(descriptor, c);
    expect(caseMismatches(result, c)).toEqual([]);
  });

  it('matches nltk corpus_bleu (and sentence_bleu per sample) on 40 pseudo-reports; its defaults are the Python ones', () => {
    const cands = randomReports(1, 40, REPORT_WORDS, 1, 16);
    const refs = randomReports(2, 40, REPORT_WORDS, 3, 16).map((r, i) => (i % 3 === 0 ? [r, randomReports(100 + i, 1, REPORT_WORDS)[0]] : [r]));
    const calls = [opts(), opts({ tokenise: '13a' }), opts({ smoothing: 'floor', order: 2 })].map((o) => ({ options: o, inputs: { candidates: cands, references: refs } }));
    const py = runPythonReference(dir, 'llmed_bleu', calls);
    if (py.skip) return console.warn(`[bleu] nltk cross-check SKIPPED: ${py.skip}`);
    expect(py.defaults).toEqual(opts());
    calls.forEach((c, k) => {
      const ts = bleu(textInput(cands, refs), c.options);
      for (const [name, v] of Object.entries(py.results![k])) expect(resultOutputs(ts)[name], `${name} (call ${k})`).toBeCloseTo(v as number, 10);
    });
  });

  it('equals sacrebleu with 13a tokens and no smoothing (mixed case, punctuation, numbers)', () => {
    const cands = ['The 3.5cm lesion, left kidney.', 'Spleen: mildly enlarged (12 cm).', 'No effusion; no ascites.'];
    const refs = [['A 3.5 cm lesion in the left kidney.'], ['The spleen is mildly enlarged (12 cm).'], ['No pleural effusion; no ascites.']];
    const py = runPythonReference(dir, 'llmed_bleu_sacre', [{ options: opts({ tokenise: '13a' }), inputs: { candidates: cands, references: refs } }]);
    if (py.skip) return console.warn(`[bleu] sacrebleu cross-check SKIPPED: ${py.skip}`);
    expect(bleu(textInput(cands, refs), opts({ tokenise: '13a' })).outputs['bleu-4']).toBeCloseTo(py.results![0]['bleu-4'] as number, 10);
  });

  it('has a seeded corpus bootstrap interval around its value', () => {
    const cands = randomReports(3, 30, REPORT_WORDS);
    const refs = randomReports(4, 30, REPORT_WORDS);
    const input = textInput(cands, refs);
    const o = opts({ order: 1 });
    const r = bleu(input, o);
    const a = metricInterval(descriptor.runtime as never, input, r, o, { seed: 7, resamples: 200 });
    const b = metricInterval(descriptor.runtime as never, input, r, o, { seed: 7, resamples: 200 });
    expect(a).toEqual(b);
    expect(a.lo).toBeLessThan(r.value);
    expect(a.hi).toBeGreaterThan(r.value);
  });

  it('paired randomisation on corpus BLEU: p = 1 for identical systems, at its floor for a clearly better one', () => {
    const refs = randomReports(5, 40, REPORT_WORDS, 6, 14);
    const good = refs.map((r, i) => (i % 4 === 0 ? randomReports(50 + i, 1, REPORT_WORDS)[0] : r));
    const bad = randomReports(6, 40, REPORT_WORDS, 6, 14);
    const o = opts({ order: 2 });
    const sys = (c: string[]) => ({ input: textInput(c, refs), result: bleu(textInput(c, refs), o) });
    const same = metricPairedTest(descriptor.runtime as never, sys(good), sys([...good]), o, { trials: 200 });
    expect(same.pValue).toBe(1);
    const diff = metricPairedTest(descriptor.runtime as never, sys(good), sys(bad), o, { trials: 200 });
    expect(diff.difference).toBeGreaterThan(0.3);
    expect(diff.pValue).toBe(1 / 201);
  });
});
