/** Tokenisers, n-grams and LCS of @llmed/text; '13a' and 'rouge' against sacrebleu's and rouge-score's own. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allNgramCounts, lcsLength, ngramCounts, porterStem, REPO_ROOT, tokenise, VENV_PYTHON } from '../src/index.ts';

const TEXTS = [
  'The 3.5cm lesion, (left) patient\'s kidney-stone 1-2 mm.',
  'Spleen: mildly enlarged [12 cm]; no "free" fluid & no ascites!',
  'Hypodense lesions in segments IV/VIII, 1,250 HU? No — none.',
  'Héterogène enhancement, ~2 cm; T2-weighted 10-15 mm',
  'A\nmulti-\nline report with <skipped> &amp; entities &lt;ok&gt;',
];

describe('tokenise', () => {
  it("'words' keeps decimals and possessives whole and splits other punctuation", () => {
    expect(tokenise(TEXTS[0])).toEqual(['the', '3.5cm', 'lesion', ',', '(', 'left', ')', "patient's", 'kidney', '-', 'stone', '1', '-', '2', 'mm', '.']);
    expect(tokenise('Héterogène 2,5')).toEqual(['héterogène', '2', ',', '5']);
  });

  it("'whitespace' only splits on spaces", () => {
    expect(tokenise(' a  b\tc.\n', 'whitespace')).toEqual(['a', 'b', 'c.']);
  });

  const py = existsSync(VENV_PYTHON) && spawnSync(VENV_PYTHON, ['-c', 'import sacrebleu, rouge_score, regex'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!py)("'13a', 'rouge' and 'words' equal the Python side (sacrebleu's Tokenizer13a, rouge-score's tokenize)", () => {
    const script = 'import json, sys; sys.path.insert(0, sys.argv[1]); from llmed.text_tokenise import tokenise; t = json.load(sys.stdin); print(json.dumps({h: [tokenise(x, h) for x in t] for h in ("13a", "rouge", "words")}))';
    const r = spawnSync(VENV_PYTHON, ['-c', script, join(REPO_ROOT, 'bridge', 'python')], { input: JSON.stringify(TEXTS), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const want = JSON.parse(r.stdout) as Record<string, string[][]>;
    for (const how of ['13a', 'rouge', 'words'] as const) expect(TEXTS.map((t) => tokenise(t, how)), how).toEqual(want[how]);
  });
});

describe('n-grams and LCS', () => {
  it('counts n-grams of one order and of all orders', () => {
    const t = ['a', 'b', 'a', 'b'];
    expect([...ngramCounts(t, 2)]).toEqual([['a\u0001b', 2], ['b\u0001a', 1]]);
    expect(allNgramCounts(t, 4).size).toBe(2 + 2 + 2 + 1);
    expect(ngramCounts(['a'], 2).size).toBe(0);
  });

  it('LCS length', () => {
    expect(lcsLength(['a', 'b', 'c', 'd'], ['b', 'd', 'a'])).toBe(2);
    expect(lcsLength([], ['a'])).toBe(0);
    expect(lcsLength(['x', 'a', 'y', 'b'], ['a', 'b'])).toBe(2);
  });

  it('Porter stems of the classic examples (nltk mode)', () => {
    expect(['caresses', 'ponies', 'ties', 'relational', 'conditional', 'generalization', 'hopping', 'filing', 'happy', 'dying', 'skies', 'enlarged', 'kidneys'].map(porterStem))
      .toEqual(['caress', 'poni', 'tie', 'relat', 'condit', 'gener', 'hop', 'file', 'happi', 'die', 'sky', 'enlarg', 'kidney']);
  });
});
