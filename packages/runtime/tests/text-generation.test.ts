/**
 * Text generation without Python, against torch: a tiny LLaMA with a real byte-level BPE tokenizer,
 * memorised on a few report sentences and exported by the real exporter (bridge/python/tests/tiny_lm_export.py).
 *
 * - the TypeScript tokenizer gives Python's ids (special tokens included) and decodes them back alike;
 * - greedy decoding through onnxruntime-node gives torch's token ids, alone and in a left-padded batch;
 * - generation stops at the end-of-text id; sampling is reproducible from its seed; top-p → 0 is greedy;
 *   the repetition penalty changes a repeating continuation.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CausalDecoder, chooseToken, generate, loadTokenizer, seededRandom, type TextTokenizer } from '../src/index.ts';

const WORKSPACE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const VENV_PYTHON = join(WORKSPACE, '.venv', 'bin', 'python');
const haveVenv = existsSync(VENV_PYTHON);
if (!haveVenv) console.warn(`[text generation tests] skipped: no Python environment at ${VENV_PYTHON} to build the tiny export (run npm run setup)`);

interface Reference {
  tokenIds: Record<string, number[]>;
  decoded: Record<string, string>;
  specialIds: Record<string, number>;
  eosId: number;
  prompts: number[][];
  steps: number;
  greedySingle: number[][];
  greedyBatched: number[][];
}

let tmp: string;
let ref: Reference;
let tokenizer: TextTokenizer;
let decoder: CausalDecoder;

describe.skipIf(!haveVenv)('text generation from an exported decoder', () => {
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'llmed-text-'));
    const built = spawnSync(VENV_PYTHON, ['-m', 'tests.tiny_lm_export', tmp], { cwd: join(WORKSPACE, 'bridge', 'python'), encoding: 'utf8', timeout: 300_000 });
    if (built.status !== 0) throw new Error(`building the tiny decoder export failed:\n${built.stderr}`);
    ref = JSON.parse(readFileSync(join(tmp, 'reference.json'), 'utf8')) as Reference;
    tokenizer = loadTokenizer(join(tmp, 'export'));
    decoder = await CausalDecoder.load(join(tmp, 'export'), { threads: 1 });
  }, 300_000);
  afterAll(async () => {
    await decoder?.release();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("tokenizes like Python's tokenizers, special tokens included, and decodes alike", () => {
    for (const [text, ids] of Object.entries(ref.tokenIds)) {
      expect(tokenizer.encode(text), text).toEqual(ids);
      expect(tokenizer.decode(ids), text).toBe(ref.decoded[text]);
    }
    for (const [token, id] of Object.entries(ref.specialIds)) expect(tokenizer.tokenId(token)).toBe(id);
    expect(() => tokenizer.tokenId('two tokens')).toThrow(/not a single token/);
  });

  it("greedy decoding gives torch's token ids, one prompt at a time", async () => {
    for (const [n, prompt] of ref.prompts.entries()) {
      const r = await generate(decoder, [[{ ids: prompt }]], { maxNewTokens: ref.steps, stopIds: [] });
      expect(r.ids[0], `prompt ${n}`).toEqual(ref.greedySingle[n]);
    }
    // the memorised model continues sentences (not one token repeated), so a broken cache would show
    expect(new Set(ref.greedySingle.flat()).size).toBeGreaterThan(4);
  });

  it("a left-padded batch gives every prompt the tokens it gets alone (and torch's batched ids)", async () => {
    const r = await generate(decoder, ref.prompts.map((p) => [{ ids: p }]), { maxNewTokens: ref.steps, stopIds: [] });
    expect(r.ids).toEqual(ref.greedyBatched);
    expect(r.ids).toEqual(ref.greedySingle);
  });

  it('stops at the end-of-text id, and streams each token as it is chosen', async () => {
    const streamed: [number, number][] = [];
    const r = await generate(decoder, ref.prompts.map((p) => [{ ids: p }]), { maxNewTokens: ref.steps, stopIds: [ref.eosId], onToken: (s, id) => streamed.push([s, id]) });
    ref.greedySingle.forEach((want, s) => {
      const cut = want.indexOf(ref.eosId);
      expect(r.ids[s]).toEqual(cut >= 0 ? want.slice(0, cut + 1) : want);
      expect(r.finish[s]).toBe(cut >= 0 ? 'stop' : 'length');
      expect(streamed.filter(([q]) => q === s).map(([, id]) => id)).toEqual(r.ids[s]);
    });
    expect(r.finish).toContain('stop');
  });

  it('accepts ready embeddings in place of token ids (how image tokens enter)', async () => {
    const prompt = ref.prompts[1];
    const h = decoder.geometry.hidden;
    const embeds = new Float32Array(2 * h);
    decoder.embedInto(prompt.slice(0, 2), embeds);
    const r = await generate(decoder, [[{ embeds, count: 2 }, { ids: prompt.slice(2) }]], { maxNewTokens: ref.steps, stopIds: [] });
    expect(r.ids[0]).toEqual(ref.greedySingle[1]);
  });

  it('samples reproducibly from a seed; a vanishing top-p is greedy', async () => {
    const prompts = ref.prompts.map((p) => [{ ids: p }]);
    const a = await generate(decoder, prompts, { maxNewTokens: 8, stopIds: [], strategy: 'sample', temperature: 1.5, seed: 3 });
    const b = await generate(decoder, prompts, { maxNewTokens: 8, stopIds: [], strategy: 'sample', temperature: 1.5, seed: 3 });
    const seeds = await Promise.all([4, 5, 6].map((seed) => generate(decoder, prompts, { maxNewTokens: 8, stopIds: [], strategy: 'sample', temperature: 1.5, seed })));
    expect(a.ids).toEqual(b.ids);
    expect(seeds.some((s) => JSON.stringify(s.ids) !== JSON.stringify(a.ids))).toBe(true);
    const nucleus = await generate(decoder, prompts, { maxNewTokens: ref.steps, stopIds: [], strategy: 'sample', topP: 1e-9, seed: 1 });
    expect(nucleus.ids).toEqual(ref.greedySingle);
  });

  it('the repetition penalty discourages tokens already seen', () => {
    const logits = Float32Array.from([2, 1.9, -1]);
    expect(chooseToken(logits, {}, seededRandom(0))).toBe(0);
    const penalised = logits.slice();
    penalised[0] /= 1.2;
    expect(chooseToken(penalised, {}, seededRandom(0))).toBe(1);
  });

  it('refuses bad generation settings, naming them', async () => {
    await expect(generate(decoder, [[{ ids: [1] }]], { maxNewTokens: 0, stopIds: [] })).rejects.toThrow(/maxNewTokens/);
    await expect(generate(decoder, [[{ ids: [1] }]], { maxNewTokens: 2, stopIds: [], strategy: 'sample', topP: 2 })).rejects.toThrow(/topP/);
    await expect(generate(decoder, [[{ ids: [10 ** 7] }]], { maxNewTokens: 2, stopIds: [] })).rejects.toThrow(/outside the vocabulary/);
  });
});
