/** meteor: the cases (nltk's numbers), the Porter stemmer and WordNet reader against nltk, pseudo-reports. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pluginOptions, readPluginCases } from '@llmed/core';
import { caseMismatches, DEFAULT_WORDNET, resultOutputs, hasWordnet, porterStem, randomReports, REPORT_WORDS, runPythonReference, runTextCase, textInput, wordnet } from '@llmed/text';
import { descriptor, meteor, type MeteorOptions } from '../src/index.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..');
const cases = readPluginCases(dir);
const opts = (o: Partial<MeteorOptions> = {}) => pluginOptions(descriptor, o, 'meteor') as unknown as MeteorOptions;
const haveWordnet = hasWordnet(DEFAULT_WORDNET);
if (!haveWordnet) console.warn(`[meteor] WordNet 3.0 not found in ${DEFAULT_WORDNET}: the METEOR tests are SKIPPED (apt-get install wordnet-base wordnet-sense-index)`);

describe.skipIf(!haveWordnet)('meteor (WordNet from Debian wordnet-base + wordnet-sense-index)', () => {
  it.each(cases.map((c) => [c.name, c] as const))('case: %s', async (_n, c) => {
    const { result } = await runTextCase(descriptor, c);
    expect(caseMismatches(result, c)).toEqual([]);
  });

  it('stems and finds synonyms as nltk does, on 400 words', () => {
    const words = [...new Set([...REPORT_WORDS, 'enlargement', 'hypodensities', 'calcified', 'calcification', 'thickening', 'unremarkable', 'dilated', 'dilatation', 'effusions', 'measuring', 'nodular', 'generalization', 'conditional', 'relational', 'sensibility', 'hopeful', 'goodness', 'adjustable', 'probate', 'controll', 'rolling', 'hopping', 'filing', 'agreed', 'skies', 'dying', 'ties', 'flies', 'cries', 'happy', 'sky', 'possibly', 'electrically', 'analogi', 'radiological', 'geese', 'mice', 'worse', 'better', 'ran', 'went', 'largest', 'bigger', 'ox', 'cm', 'mm', 'is', 'was', 'are'])];
    // Generated words from suffix pieces reach the stemmer's rarer rules.
    const stems = ['rel', 'condit', 'hop', 'gener', 'form', 'sens', 'radi', 'cyst', 'lob', 'nod', 'dens', 'fibr', 'ston', 'vascul', 'enlarg', 'calc'];
    const suffixes = ['ational', 'tional', 'enci', 'anci', 'izer', 'bli', 'alli', 'entli', 'eli', 'ousli', 'ization', 'ation', 'ator', 'alism', 'iveness', 'fulness', 'ousness', 'aliti', 'iviti', 'biliti', 'logi', 'icate', 'ative', 'alize', 'iciti', 'ical', 'ful', 'ness', 'ement', 'ment', 'ion', 'ies', 'ied', 'ing', 'ed', 'ly', 'y', 'e', 'll', 'sses', 's'];
    for (const s of stems) for (const x of suffixes) words.push(s + x);
    const py = runPythonReference(dir, 'llmed_meteor_lexicon', [{ options: {}, inputs: { words } }]);
    if (py.skip) return console.warn(`[meteor] nltk cross-check SKIPPED: ${py.skip}`);
    const r = py.results![0] as unknown as { stems: string[]; synonyms: string[][] };
    expect(words.map(porterStem)).toEqual(r.stems);
    const wn = wordnet();
    expect(words.map((w) => [...wn.meteorSynonyms(w)].sort())).toEqual(r.synonyms);
  });

  it('matches nltk meteor_score on 40 pseudo-reports (and its defaults are the Python ones)', () => {
    const cands = randomReports(21, 40, REPORT_WORDS, 1, 16);
    const refs = randomReports(22, 40, REPORT_WORDS, 3, 16).map((r, i) => (i % 3 === 0 ? [r, randomReports(300 + i, 1, REPORT_WORDS)[0]] : [r]));
    const calls = [opts(), opts({ alpha: 0.7, beta: 2, gamma: 0.3, tokenise: 'rouge' })].map((o) => ({ options: o, inputs: { candidates: cands, references: refs } }));
    const py = runPythonReference(dir, 'llmed_meteor', calls);
    if (py.skip) return console.warn(`[meteor] nltk cross-check SKIPPED: ${py.skip}`);
    expect(py.defaults).toEqual(opts());
    calls.forEach((c, k) => {
      const ts = resultOutputs(meteor(textInput(cands, refs), c.options));
      for (const [name, v] of Object.entries(py.results![k])) expect(ts[name], `${name} (call ${k})`).toBeCloseTo(v as number, 10);
    });
  });
});

it('without WordNet, METEOR stops naming the folder and the Debian package', () => {
  expect(() => meteor(textInput(['a'], ['a']), opts({ wordnet: '/no/such/wordnet' }))).toThrow(/WordNet 3.0 database files in \/no\/such\/wordnet/);
});
