/** rouge-l: the cases (the Python reference's numbers), and the reference library on pseudo-reports. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pluginOptions, readPluginCases } from '@llmed/core';
import { caseMismatches, randomReports, resultOutputs, REPORT_WORDS, runPythonReference, runTextCase, textInput } from '@llmed/text';
import { rougeL, descriptor, type RougeLOptions } from '../src/index.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..');
const cases = readPluginCases(dir);
const opts = (o: Partial<RougeLOptions> = {}) => pluginOptions(descriptor, o, 'rouge-l') as unknown as RougeLOptions;

describe('rouge-l', () => {
  it.each(cases.map((c) => [c.name, c] as const))('case: %s', async (_n, c) => {
    const { result } = await runTextCase(descriptor, c);
    expect(caseMismatches(result, c)).toEqual([]);
  });

  it('matches its Python reference on 40 pseudo-reports (and its defaults are the Python ones)', () => {
    const cands = randomReports(11, 40, REPORT_WORDS, 1, 16);
    const refs = randomReports(12, 40, REPORT_WORDS, 3, 16).map((r, i) => (i % 3 === 0 ? [r, randomReports(200 + i, 1, REPORT_WORDS)[0]] : [r]));
    const calls = [{}, { tokenise: 'words' as const }].map((o) => ({ options: opts(o), inputs: { candidates: cands, references: refs } }));
    const py = runPythonReference(dir, 'llmed_rouge_l', calls);
    if (py.skip) return console.warn(`[rouge-l] reference cross-check SKIPPED: ${py.skip}`);
    expect(py.defaults).toEqual(opts());
    calls.forEach((c, k) => {
      const ts = rougeL(textInput(cands, refs), c.options);
      for (const [name, v] of Object.entries(py.results![k])) expect(resultOutputs(ts)[name], `${name} (call ${k})`).toBeCloseTo(v as number, 9);
    });
  });
});
