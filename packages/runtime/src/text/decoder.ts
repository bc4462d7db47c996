/**
 * An exported causal-LM decoder in onnxruntime-node (bridge/python/llmed/export_lm.py writes it):
 *
 *   decoder.onnx     inputs_embeds (B, S, H) f32, attention_mask (B, P+S) i64, position_ids (B, S) i64,
 *                    past_key_values.{i}.key|value (B, kvHeads, P, headDim) → logits (B, S, V),
 *                    present.{i}.key|value (B, kvHeads, P+S, headDim)
 *   embed_tokens.f32 the (V, H) input embedding table, little-endian float32
 *   decoder.json     the geometry above, file names and the export's parity record
 *
 * Token ids are looked up here, not in the graph, so that text tokens and projected image tokens enter
 * the decoder the same way (as rows of `inputs_embeds`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LlmedError } from '@llmed/core';
import { loadOrt, type Ort } from '../predictor.ts';

export interface CacheGeometry { layers: number; kvHeads: number; headDim: number; hidden: number; vocab: number }

export interface DecoderRecord {
  decoder: { file: string; externalData: string | null; opset: number };
  embeddings: { file: string; dtype: 'float32'; shape: [number, number] };
  cache: CacheGeometry;
}

type Tensor = import('onnxruntime-node').Tensor;

export interface StepResult {
  /** Logits of the last position of each sequence, B × V. */
  lastLogits: Float32Array;
  /** The cache after this step, to pass as `past` to the next. */
  present: Tensor[];
}

export interface DecoderOptions { threads?: number }

export class CausalDecoder {
  private constructor(
    readonly folder: string,
    readonly record: DecoderRecord,
    readonly embeddings: Float32Array,
    private readonly ort: Ort,
    private readonly session: import('onnxruntime-node').InferenceSession,
  ) {}

  /** Load `folder`'s decoder, described by `given` (a report manifest) or by the folder's decoder.json. */
  static async load(folder: string, opts: DecoderOptions = {}, given?: DecoderRecord): Promise<CausalDecoder> {
    const recordFile = given ? join(folder, 'manifest.json') : join(folder, 'decoder.json');
    if (!given && !existsSync(recordFile)) throw new LlmedError('checkpoint', `${recordFile} is missing: this is not a decoder export`, { where: folder, hint: 'export a report model with `llmed export <experiment>`' });
    const record = given ?? (JSON.parse(readFileSync(recordFile, 'utf8')) as DecoderRecord);
    const { hidden, vocab } = record.cache;
    const tableFile = join(folder, record.embeddings.file);
    const bytes = readFileSync(tableFile);
    if (bytes.byteLength !== vocab * hidden * 4) {
      throw new LlmedError('checkpoint', `${tableFile} holds ${bytes.byteLength} bytes; a ${vocab} × ${hidden} float32 table is ${vocab * hidden * 4}`, { where: tableFile, hint: 'export the model again' });
    }
    // Copy into an aligned buffer: a Buffer from readFileSync may start at an offset that is not a multiple of 4.
    const embeddings = new Float32Array(vocab * hidden);
    new Uint8Array(embeddings.buffer).set(bytes);
    const ort = await loadOrt();
    let session: import('onnxruntime-node').InferenceSession;
    try {
      session = await ort.InferenceSession.create(join(folder, record.decoder.file), {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
      });
    } catch (e) {
      throw new LlmedError('checkpoint', `onnxruntime cannot load the decoder: ${(e as Error).message.split('\n')[0]}`, { where: join(folder, record.decoder.file), hint: 'export the model again', cause: e });
    }
    const want = ['inputs_embeds', 'attention_mask', 'position_ids', ...Array.from({ length: record.cache.layers }, (_, i) => [`past_key_values.${i}.key`, `past_key_values.${i}.value`]).flat()];
    if (session.inputNames.join(',') !== want.join(',')) {
      throw new LlmedError('checkpoint', `the decoder's inputs are [${session.inputNames.join(', ')}], decoder.json describes [${want.join(', ')}]`, { where: recordFile, hint: 'export the model again' });
    }
    return new CausalDecoder(folder, record, embeddings, ort, session);
  }

  get geometry(): CacheGeometry { return this.record.cache; }

  /** Rows of the embedding table for `ids`, written into `out` at `offset` rows. */
  embedInto(ids: readonly number[], out: Float32Array, offset = 0): void {
    const h = this.record.cache.hidden;
    ids.forEach((id, n) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.record.cache.vocab) throw new LlmedError('usage', `token id ${id} is outside the vocabulary (0..${this.record.cache.vocab - 1})`);
      out.set(this.embeddings.subarray(id * h, (id + 1) * h), (offset + n) * h);
    });
  }

  /** An empty cache (past length 0) for a batch of `batch`. */
  emptyPast(batch: number): Tensor[] {
    const { layers, kvHeads, headDim } = this.record.cache;
    return Array.from({ length: 2 * layers }, () => new this.ort.Tensor('float32', new Float32Array(0), [batch, kvHeads, 0, headDim]));
  }

  /** One forward pass over `seq` new positions per sequence. */
  async step(embeds: Float32Array, batch: number, seq: number, mask: BigInt64Array, positions: BigInt64Array, past: Tensor[]): Promise<StepResult> {
    const { hidden, vocab, layers } = this.record.cache;
    const total = mask.length / batch;
    const feeds: Record<string, Tensor> = {
      inputs_embeds: new this.ort.Tensor('float32', embeds, [batch, seq, hidden]),
      attention_mask: new this.ort.Tensor('int64', mask, [batch, total]),
      position_ids: new this.ort.Tensor('int64', positions, [batch, seq]),
    };
    for (let i = 0; i < layers; i++) {
      feeds[`past_key_values.${i}.key`] = past[2 * i];
      feeds[`past_key_values.${i}.value`] = past[2 * i + 1];
    }
    const out = await this.session.run(feeds);
    const logits = out.logits.data as Float32Array;
    const lastLogits = new Float32Array(batch * vocab);
    for (let b = 0; b < batch; b++) lastLogits.set(logits.subarray(((b + 1) * seq - 1) * vocab, (b + 1) * seq * vocab), b * vocab);
    const present = Array.from({ length: layers }, (_, i) => [out[`present.${i}.key`], out[`present.${i}.value`]]).flat();
    // Only the cache is kept; release the (B, S, V) logits of a long prefill now.
    out.logits.dispose?.();
    return { lastLogits, present };
  }

  async release(): Promise<void> { await this.session.release(); }
}
