/** green: parser and formula on fixed judge answers, the skip without a judge, and the judge runner. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pluginOptions, readPluginCases } from '@llmed/core';
import { REPO_ROOT, textInput, VENV_PYTHON } from '@llmed/text';
import { descriptor, greenFromAnswers, greenPrompt, greenScore, parseGreenAnswer, readPromptTemplate, runtime, type GreenOptions } from '../src/index.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..');
const cases = readPluginCases(dir);
const opts = (o: Partial<GreenOptions> = {}) => pluginOptions(descriptor, o, 'green') as unknown as GreenOptions;
const answersOf = (name: RegExp) => cases.find((c) => name.test(c.name))!.inputs.answers as string[];

describe('green', () => {
  it.each(cases.map((c) => [c.name, c] as const))('case: %s', (_n, c) => {
    const r = greenFromAnswers(c.inputs.answers as string[]);
    const got: Record<string, number> = { ...r.outputs, value: r.value, ...r.counts };
    for (const [k, want] of Object.entries(c.expected)) expect(got[k], k).toBeCloseTo(want as number, 12);
  });

  it("reads GREEN's five golden error vectors and scores them 0, 1/6, 1/3, 1/2, 1/4", () => {
    const parsed = answersOf(/golden/).map(parseGreenAnswer);
    expect(parsed.map((p) => (p.ok ? p.counts.significant : null))).toEqual([[2, 3, 0, 1, 0, 0], [2, 1, 2, 0, 0, 0], [0, 2, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0], [1, 0, 1, 1, 0, 0]]);
    expect(parsed.map((p) => (p.ok ? p.counts.matched : null))).toEqual([0, 1, 2, 1, 1]);
    const scores = parsed.map((p) => (p.ok ? greenScore(p.counts) : NaN));
    [0, 1 / 6, 1 / 3, 1 / 2, 1 / 4].forEach((want, i) => expect(scores[i]).toBeCloseTo(want, 12));
  });

  it('names why an answer is unreadable, and leaves it out of the mean instead of scoring 0', () => {
    const [good, prose, noCount, noMatched] = answersOf(/unreadable/);
    expect(parseGreenAnswer(good).ok).toBe(true);
    expect(parseGreenAnswer(prose)).toEqual({ ok: false, reason: 'no [Clinically Significant Errors] section' });
    expect(parseGreenAnswer(noCount)).toEqual({ ok: false, reason: '[Matched Findings] does not start with "<count>."' });
    expect(parseGreenAnswer(noMatched)).toEqual({ ok: false, reason: 'no [Matched Findings] section' });
    const r = greenFromAnswers([good, prose]);
    expect(r.perSample[0]).toBeCloseTo(0.75, 12);
    expect(r.perSample[1]).toBeNaN();
    expect(r.value).toBeCloseTo(0.75, 12);
    expect(r.counts).toEqual({ unparseable: 1, answered: 2 });
    expect(r.outputs['green-as-released']).toBeCloseTo(0.375, 12);
  });

  it('the prompt (from the judge folder) carries both reports cut to maxWords words', () => {
    const p = greenPrompt('Reference:\n{reference}\nCandidate:\n{candidate}\n', 'one two three four', 'alpha  beta\ngamma delta', 3);
    expect(p).toBe('Reference:\none two three\nCandidate:\nalpha beta gamma\n');
    const tmp = mkdtempSync(join(tmpdir(), 'llmed-green-'));
    try {
      expect(readPromptTemplate(tmp)).toBeUndefined();
      writeFileSync(join(tmp, 'green_prompt.txt'), 'only {reference}');
      expect(() => readPromptTemplate(tmp)).toThrow(/must hold \{candidate\} exactly once/);
      writeFileSync(join(tmp, 'config.json'), '{}');
      writeFileSync(join(tmp, 'tokenizer.json'), '{}');
      rmSync(join(tmp, 'green_prompt.txt'));
      return Promise.resolve(runtime.computeText(textInput(['a'], ['b']), opts({ judge: tmp }), { workspaceRoot: tmp })).then((r) => {
        expect(r.skipped).toMatch(/^no GREEN prompt at .*green_prompt\.txt/);
      });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('is skipped with "no judge model at <path>" when the judge folder is missing', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'llmed-green-'));
    try {
      const r = await runtime.computeText(textInput(['a'], ['b']), opts({ judge: 'no/such/judge' }), { workspaceRoot: tmp });
      expect(r.skipped).toBe(`no judge model at ${join(tmp, 'no/such/judge')}`);
      expect(r.value).toBeNaN();
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  // A real judge is 7 B parameters; the runner is exercised end to end with a tiny random Llama and a
  // word-level tokenizer (tests/tiny_judge.py): its greedy noise must come back unparseable, not 0.
  const py = spawnSync(VENV_PYTHON, ['-c', 'import transformers, tokenizers'], { encoding: 'utf8' });
  it.skipIf(py.status !== 0)('runs a local judge folder through the Python runner; a noise answer is unparseable', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'llmed-green-judge-'));
    try {
      const b = spawnSync(VENV_PYTHON, [join(dir, 'tests', 'tiny_judge.py'), join(tmp, 'judge')], { encoding: 'utf8' });
      expect(b.status, b.stderr).toBe(0);
      const r = await runtime.computeText(textInput(['The liver is normal.', 'No lesion.'], ['Small hypodense liver lesion.', 'No lesion.']), opts({ judge: join(tmp, 'judge'), maxNewTokens: 4 }), { workspaceRoot: REPO_ROOT });
      expect(r.skipped).toBeUndefined();
      expect(r.counts).toEqual({ unparseable: 2, answered: 2 });
      expect(r.value).toBeNaN();
      expect(r.outputs['green-as-released']).toBe(0);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 120_000);
});
