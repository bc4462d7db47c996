/** vqa-accuracy: the cases (also reproduced by the Python rules), chance level, and the letter parser. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pluginOptions, readPluginCases } from '@llmed/core';
import { caseMismatches, metricInterval, runPythonReference, runTextCase, seededRandom, textInput } from '@llmed/text';
import { answerLetter, descriptor, vqaAccuracy, type VqaAccuracyOptions } from '../src/index.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..');
const cases = readPluginCases(dir);
const opts = (o: Partial<VqaAccuracyOptions> = {}) => pluginOptions(descriptor, o, 'vqa-accuracy') as unknown as VqaAccuracyOptions;

describe('vqa-accuracy', () => {
  it.each(cases.map((c) => [c.name, c] as const))('case: %s', async (_n, c) => {
    const { result } = await runTextCase(descriptor, c);
    expect(caseMismatches(result, c)).toEqual([]);
  });

  it('reads option letters and nothing else', () => {
    expect(['A', ' b.', '(C) both', 'D: portal', 'a left'].map((t) => answerLetter(t, 4))).toEqual(['A', 'B', 'C', 'D', 'A']);
    expect(['Answer: B', 'E', 'BC', '', '42'].map((t) => answerLetter(t, 4))).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('a uniform random guesser scores near the chance level it reports; the interval covers it', () => {
    const rand = seededRandom(5);
    const n = 2000;
    const refs = Array.from({ length: n }, () => 'ABCD'[Math.floor(rand() * 4)]);
    const cands = Array.from({ length: n }, () => 'ABCD'[Math.floor(rand() * 4)]);
    const input = textInput(cands, refs);
    const r = vqaAccuracy(input, opts());
    expect(r.outputs.chance).toBe(0.25);
    const ci = metricInterval(descriptor.runtime as never, input, r, opts(), { seed: 1 });
    expect(ci.lo).toBeLessThan(0.25);
    expect(ci.hi).toBeGreaterThan(0.25);
  });

  it('a reference that is not an option letter is an error, not a miss', () => {
    expect(() => vqaAccuracy(textInput(['A'], ['left kidney']), opts())).toThrow(/not an option letter/);
  });

  it('the Python rules give the same numbers on 200 generated answers', () => {
    const rand = seededRandom(9);
    const forms = ['X', 'x.', '(X) text', 'X: text', 'The answer is X', 'X. and Y.', 'none'];
    const cands = Array.from({ length: 200 }, () => forms[Math.floor(rand() * forms.length)].replace('X', 'ABCDE'[Math.floor(rand() * 5)]).replace('Y', 'ABCD'[Math.floor(rand() * 4)]));
    const choices = Array.from({ length: 200 }, () => Array.from({ length: 2 + Math.floor(rand() * 4) }, (_, j) => `option ${j}`));
    const refs = choices.map((c) => 'ABCDE'[Math.floor(rand() * c.length)]);
    const calls = [opts(), opts({ match: 'm3d' })].map((o) => ({ options: o, inputs: { candidates: cands, references: refs, choices } }));
    const py = runPythonReference(dir, 'llmed_vqa_accuracy', calls);
    if (py.skip) return console.warn(`[vqa-accuracy] Python cross-check SKIPPED: ${py.skip}`);
    expect(py.defaults).toEqual(opts());
    calls.forEach((c, k) => {
      const ts = vqaAccuracy(textInput(cands, refs, choices), c.options);
      expect(ts.outputs.accuracy).toBeCloseTo(py.results![k].accuracy as number, 12);
      expect(ts.outputs.chance).toBeCloseTo(py.results![k].chance as number, 12);
      if (k === 0) expect(ts.counts!.unparsed).toBe(py.results![k].unparsed);
    });
  });
});
