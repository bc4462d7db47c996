/**
 * Text generation over an exported decoder (decoder.ts): a batch of prompts, left padded, decoded with
 * the KV cache — greedy by default, or temperature / top-p sampling from a seeded generator — with an
 * optional repetition penalty, stopping at the end-of-text ids, each new token handed to `onToken` as it
 * comes (streaming).
 *
 * A prompt is a list of parts: token ids, or ready embeddings (projected image tokens) that take the
 * place of the `<im_patch>` run in the prompt. Positions count from each sequence's first real token, and
 * pads are masked out, which is what transformers' `generate` does for a left-padded batch — so a batch
 * gives each prompt the tokens it would get alone (checked in tests).
 */
import { LlmedError, mulberry32 } from '@llmed/core';
import type { CausalDecoder } from './decoder.ts';

export type PromptPart = { ids: readonly number[] } | { embeds: Float32Array; count: number };

export interface GenerationOptions {
  maxNewTokens: number;
  /** Token ids that end a sequence (the family's end-of-text ids); the stop token is kept in the output. */
  stopIds: readonly number[];
  /** 'greedy' (default) or 'sample'. */
  strategy?: 'greedy' | 'sample';
  /** Sampling temperature (> 0), default 1. */
  temperature?: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches topP (0 < topP ≤ 1), default 1. */
  topP?: number;
  /** Seed of the sampling generator; the same seed gives the same text. */
  seed?: number;
  /** CTRL-style penalty (> 1 discourages repeats) on tokens already in the prompt or the output; default 1 (off). */
  repetitionPenalty?: number;
  /** Called with each new token of each sequence, in order, as soon as it is chosen. */
  onToken?: (sequence: number, id: number) => void;
  /** Called with each sequence's raw next-token logits (before the penalty), e.g. to score option letters. */
  onLogits?: (row: Float32Array, sequence: number, step: number) => void;
}

export interface GenerationResult {
  /** New token ids per sequence (the stop token included when one was reached). */
  ids: number[][];
  /** Why each sequence ended. */
  finish: ('stop' | 'length')[];
  /** Wall time of the prompt pass, and of each later step on average (ms). */
  prefillMs: number;
  stepMs: number;
}

/** The sampling generator: @llmed/core's mulberry32 (one seeded generator in llmed). */
export const seededRandom = mulberry32;

function partLength(p: PromptPart): number { return 'ids' in p ? p.ids.length : p.count; }

/** Apply the repetition penalty to `logits` in place for every id in `seen`. */
export function penaliseRepeats(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of seen) logits[id] = logits[id] > 0 ? logits[id] / penalty : logits[id] * penalty;
}

/** Choose the next token from one row of logits. */
export function chooseToken(logits: Float32Array, opts: Pick<GenerationOptions, 'strategy' | 'temperature' | 'topP'>, random: () => number): number {
  if ((opts.strategy ?? 'greedy') === 'greedy') {
    let best = 0;
    for (let v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v;
    return best;
  }
  const temperature = opts.temperature ?? 1;
  const topP = opts.topP ?? 1;
  let max = -Infinity;
  for (const x of logits) if (x > max) max = x;
  const order = Array.from(logits.keys());
  const weights = new Float64Array(logits.length);
  let total = 0;
  for (let v = 0; v < logits.length; v++) { weights[v] = Math.exp((logits[v] - max) / temperature); total += weights[v]; }
  order.sort((a, b) => weights[b] - weights[a]);
  // the nucleus: the most probable tokens until their mass reaches topP (at least one)
  let kept = 0;
  let mass = 0;
  while (kept < order.length && (kept === 0 || mass < topP * total)) mass += weights[order[kept++]];
  let r = random() * mass;
  for (let n = 0; n < kept; n++) {
    r -= weights[order[n]];
    if (r <= 0) return order[n];
  }
  return order[kept - 1];
}

function checkOptions(opts: GenerationOptions): void {
  const bad = (what: string) => { throw new LlmedError('usage', what); };
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) bad(`maxNewTokens must be a positive integer, not ${opts.maxNewTokens}`);
  if (opts.temperature !== undefined && !(opts.temperature > 0)) bad(`temperature must be > 0, not ${opts.temperature}`);
  if (opts.topP !== undefined && !(opts.topP > 0 && opts.topP <= 1)) bad(`topP must be in (0, 1], not ${opts.topP}`);
  if (opts.repetitionPenalty !== undefined && !(opts.repetitionPenalty > 0)) bad(`repetitionPenalty must be > 0, not ${opts.repetitionPenalty}`);
}

/** Generate continuations of `prompts` (one sequence each) with `decoder`. */
export async function generate(decoder: CausalDecoder, prompts: readonly (readonly PromptPart[])[], opts: GenerationOptions): Promise<GenerationResult> {
  checkOptions(opts);
  const { hidden, vocab } = decoder.geometry;
  const batch = prompts.length;
  if (batch === 0) return { ids: [], finish: [], prefillMs: 0, stepMs: 0 };
  const lengths = prompts.map((parts) => parts.reduce((n, p) => n + partLength(p), 0));
  const width = Math.max(...lengths);
  if (lengths.some((n) => n === 0)) throw new LlmedError('usage', 'an empty prompt cannot be continued');

  // Prompt pass: left padding (zeros, masked), positions from each sequence's first real token.
  const embeds = new Float32Array(batch * width * hidden);
  const positions = new BigInt64Array(batch * width);
  let mask = new BigInt64Array(batch * width);
  const seen = prompts.map(() => new Set<number>());
  prompts.forEach((parts, b) => {
    let at = b * width + (width - lengths[b]);
    for (const part of parts) {
      if ('ids' in part) {
        decoder.embedInto(part.ids, embeds, at);
        part.ids.forEach((id) => seen[b].add(id));
      } else {
        if (part.embeds.length !== part.count * hidden) throw new LlmedError('usage', `image tokens: ${part.embeds.length} values for ${part.count} tokens of width ${hidden}`);
        embeds.set(part.embeds, at * hidden);
      }
      at += partLength(part);
    }
    for (let s = 0; s < width; s++) {
      const real = s >= width - lengths[b];
      mask[b * width + s] = real ? 1n : 0n;
      positions[b * width + s] = BigInt(real ? s - (width - lengths[b]) : 0);
    }
  });

  const random = seededRandom(opts.seed ?? 0);
  const stop = new Set(opts.stopIds);
  const ids: number[][] = prompts.map(() => []);
  const finish: ('stop' | 'length')[] = prompts.map(() => 'length');
  const done = prompts.map(() => false);
  const penalty = opts.repetitionPenalty ?? 1;

  let t0 = performance.now();
  let { lastLogits, present } = await decoder.step(embeds, batch, width, mask, positions, decoder.emptyPast(batch));
  const prefillMs = performance.now() - t0;
  let steps = 0;
  t0 = performance.now();
  const next = new Array<number>(batch).fill(0);
  const nextPositions = BigInt64Array.from(lengths, (n) => BigInt(n));
  for (let produced = 0; ; produced++) {
    for (let b = 0; b < batch; b++) {
      if (done[b]) continue;
      const row = lastLogits.subarray(b * vocab, (b + 1) * vocab);
      opts.onLogits?.(row, b, produced);
      penaliseRepeats(row, seen[b], penalty);
      const id = chooseToken(row, opts, random);
      next[b] = id;
      ids[b].push(id);
      seen[b].add(id);
      opts.onToken?.(b, id);
      if (stop.has(id)) { done[b] = true; finish[b] = 'stop'; }
    }
    if (done.every(Boolean) || produced + 1 >= opts.maxNewTokens) break;
    // One new position per sequence; finished ones keep feeding their last token, masked out.
    const stepEmbeds = new Float32Array(batch * hidden);
    next.forEach((id, b) => decoder.embedInto([id], stepEmbeds, b));
    const total = mask.length / batch + 1;
    const grown = new BigInt64Array(batch * total);
    for (let b = 0; b < batch; b++) {
      grown.set(mask.subarray(b * (total - 1), (b + 1) * (total - 1)), b * total);
      grown[b * total + total - 1] = done[b] ? 0n : 1n;
    }
    mask = grown;
    ({ lastLogits, present } = await decoder.step(stepEmbeds, batch, 1, mask, nextPositions.slice(), present));
    for (let b = 0; b < batch; b++) nextPositions[b] += 1n;
    steps++;
  }
  return { ids, finish, prefillMs, stepMs: steps > 0 ? (performance.now() - t0) / steps : 0 };
}
