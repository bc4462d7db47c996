/**
 * A report-generator export in Node (bridge/python/llmed/export_report.py writes it): the vision graph
 * turns a preprocessed CT into image tokens, the prompt template puts them where its `{image}` mark is,
 * and the decoder generates the report — or, for a multiple-choice question, scores the option letters.
 * No Python on this path.
 *
 * Files are checked against the manifest (sizes and SHA-256) when the export is opened, and the graphs'
 * inputs against the manifest when they are loaded.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LlmedError } from '@llmed/core';
import { loadOrt } from '../predictor.ts';
import { CausalDecoder, type DecoderRecord } from './decoder.ts';
import { generate, type GenerationOptions, type PromptPart } from './generate.ts';
import { loadTokenizer, type TextTokenizer } from './tokenizer.ts';

export interface ReportManifest extends DecoderRecord {
  kind: 'report';
  version: 1;
  source: Record<string, unknown>;
  vision: { file: string; input: { name: string; shape: number[] }; output: { name: string; shape: number[] } };
  tokenizer: { files: string[] };
  preprocess: Record<string, unknown> & { id: string };
  prompt: { templates: Record<string, string>; imageToken: string; imageTokenId: number; imageTokens: number; placement: string };
  stopIds: number[];
  generation: { strategy?: 'greedy' | 'sample'; maxNewTokens?: number; temperature?: number; topP?: number; repetitionPenalty?: number };
  files: Record<string, { bytes: number; sha256: string }>;
  parity: Record<string, unknown>;
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Read and check a report export's manifest and files; every problem is one error naming the file. */
export async function openReportExport(folder: string): Promise<ReportManifest> {
  const manifestFile = join(folder, 'manifest.json');
  if (!existsSync(manifestFile)) throw new LlmedError('checkpoint', `${manifestFile} is missing: not an export`, { where: folder, hint: 'export a report model with `llmed export <experiment>`' });
  let manifest: ReportManifest;
  try {
    manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as ReportManifest;
  } catch (e) {
    throw new LlmedError('checkpoint', `cannot read the manifest: ${(e as Error).message}`, { where: manifestFile });
  }
  if (manifest.kind !== 'report') throw new LlmedError('checkpoint', `this export is a ${String(manifest.kind ?? 'registration')} model, not a report generator`, { where: manifestFile, hint: '`llmed register` runs registration exports' });
  for (const [name, want] of Object.entries(manifest.files ?? {})) {
    const file = join(folder, name);
    if (name.includes('/') || name.startsWith('.')) throw new LlmedError('checkpoint', `the manifest names '${name}', which is not a plain file name`, { where: manifestFile });
    if (!existsSync(file) || !lstatSync(file).isFile()) throw new LlmedError('checkpoint', `${name} is missing`, { where: folder, hint: 'export the model again' });
    if (statSync(file).size !== want.bytes) throw new LlmedError('checkpoint', `${name} is ${statSync(file).size} bytes; the manifest says ${want.bytes} (truncated or replaced?)`, { where: file, hint: 'export the model again' });
    if ((await sha256(file)) !== want.sha256) throw new LlmedError('checkpoint', `${name} does not match its SHA-256 in the manifest`, { where: file, hint: 'export the model again' });
  }
  for (const needed of [manifest.vision.file, manifest.decoder.file, manifest.embeddings.file, ...manifest.tokenizer.files]) {
    if (!manifest.files[needed]) throw new LlmedError('checkpoint', `the manifest does not list ${needed}`, { where: manifestFile });
  }
  return manifest;
}

export interface ScoredChoices {
  /** Logit of each option letter as the next token after the question. */
  scores: Record<string, number>;
  /** The letter with the highest score. */
  answer: string;
}

export class ReportGenerator {
  private constructor(
    readonly folder: string,
    readonly manifest: ReportManifest,
    readonly tokenizer: TextTokenizer,
    readonly decoder: CausalDecoder,
    private readonly vision: import('onnxruntime-node').InferenceSession,
    private readonly ort: Awaited<ReturnType<typeof loadOrt>>,
  ) {}

  static async load(folder: string, opts: { threads?: number } = {}): Promise<ReportGenerator> {
    const manifest = await openReportExport(folder);
    const ort = await loadOrt();
    const sessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all' as const, ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}) };
    let vision: import('onnxruntime-node').InferenceSession;
    try {
      vision = await ort.InferenceSession.create(join(folder, manifest.vision.file), sessionOptions);
    } catch (e) {
      throw new LlmedError('checkpoint', `onnxruntime cannot load the vision model: ${(e as Error).message.split('\n')[0]}`, { where: join(folder, manifest.vision.file), cause: e });
    }
    if (vision.inputNames[0] !== manifest.vision.input.name) throw new LlmedError('checkpoint', `the vision graph takes '${vision.inputNames[0]}', the manifest says '${manifest.vision.input.name}'`, { where: join(folder, 'manifest.json') });
    const decoder = await CausalDecoder.load(folder, opts, manifest);
    return new ReportGenerator(folder, manifest, loadTokenizer(folder), decoder, vision, ort);
  }

  /** Shape of the preprocessed image the vision graph takes: (1, 1, D, H, W). */
  get imageShape(): number[] { return this.manifest.vision.input.shape; }

  /** Image tokens (N × hidden, row-major) of one preprocessed image laid out as `imageShape`. */
  async imageTokens(image: Float32Array): Promise<Float32Array> {
    const shape = this.imageShape;
    const n = shape.reduce((a, b) => a * b, 1);
    if (image.length !== n) throw new LlmedError('usage', `the image has ${image.length} values; this model takes ${shape.join('×')} = ${n}`);
    const out = await this.vision.run({ [this.manifest.vision.input.name]: new this.ort.Tensor('float32', image, shape) });
    return out[this.manifest.vision.output.name].data as Float32Array;
  }

  /** The prompt parts of template `kind` with the image tokens at its `{image}` mark. */
  promptParts(kind: string, tokens: Float32Array, fields: Record<string, string>): PromptPart[] {
    const template = this.manifest.prompt.templates[kind];
    if (!template) throw new LlmedError('usage', `this model has no '${kind}' prompt (it has: ${Object.keys(this.manifest.prompt.templates).join(', ')})`);
    const [before, after] = template.split('{image}');
    const fill = (text: string) => text.replace(/\{(\w+)\}/g, (_m, key: string) => {
      if (fields[key] === undefined) throw new LlmedError('usage', `the '${kind}' prompt needs a value for {${key}}`);
      return fields[key];
    });
    const parts: PromptPart[] = [];
    if (before) parts.push({ ids: this.tokenizer.encode(fill(before)) });
    parts.push({ embeds: tokens, count: this.manifest.prompt.imageTokens });
    if (after) parts.push({ ids: this.tokenizer.encode(fill(after)) });
    return parts;
  }

  /** Generate the report of one preprocessed image; `onText` receives the text as it grows. */
  async report(image: Float32Array, opts: { region?: string; prompt?: string; onText?: (delta: string) => void } & Partial<GenerationOptions> = {}): Promise<{ text: string; ids: number[]; finish: 'stop' | 'length'; prefillMs: number; stepMs: number }> {
    const tokens = await this.imageTokens(image);
    const parts = opts.prompt !== undefined
      ? [{ embeds: tokens, count: this.manifest.prompt.imageTokens }, { ids: this.tokenizer.encode(opts.prompt) }]
      : this.promptParts('report', tokens, { region: opts.region ?? 'abdomen' });
    const g = this.manifest.generation;
    const ids: number[] = [];
    let shown = '';
    const r = await generate(this.decoder, [parts], {
      maxNewTokens: opts.maxNewTokens ?? g.maxNewTokens ?? 256,
      stopIds: opts.stopIds ?? this.manifest.stopIds,
      strategy: opts.strategy ?? g.strategy,
      temperature: opts.temperature ?? g.temperature,
      topP: opts.topP ?? g.topP,
      seed: opts.seed,
      repetitionPenalty: opts.repetitionPenalty ?? g.repetitionPenalty,
      onToken: (_s, id) => {
        ids.push(id);
        if (!opts.onText) return;
        const text = this.tokenizer.decode(ids, true);
        // a multi-byte character may span tokens: show text only once it decodes whole
        if (!text.endsWith('\uFFFD') && text.length >= shown.length) {
          opts.onText(text.slice(shown.length));
          shown = text;
        }
      },
    });
    return { text: this.tokenizer.decode(r.ids[0], true), ids: r.ids[0], finish: r.finish[0], prefillMs: r.prefillMs, stepMs: r.stepMs };
  }

  /** Score the option letters of a multiple-choice question (the logit of each letter as the next token). */
  async ask(image: Float32Array, question: string, choices: Record<string, string>): Promise<ScoredChoices> {
    const letters = Object.keys(choices);
    if (letters.length < 2) throw new LlmedError('usage', 'a multiple-choice question needs at least two choices');
    const tokens = await this.imageTokens(image);
    const parts = this.promptParts('vqa', tokens, { question, choices: letters.map((k) => `${k}. ${choices[k]}`).join(' ') });
    const letterIds = letters.map((k) => {
      const ids = this.tokenizer.encode(` ${k}`);
      return ids[ids.length - 1];
    });
    if (new Set(letterIds).size !== letters.length) throw new LlmedError('usage', `the choice letters ${letters.join(', ')} do not map to distinct tokens`);
    let scores: Record<string, number> = {};
    await generate(this.decoder, [parts], {
      maxNewTokens: 1,
      stopIds: [],
      onLogits: (row) => { scores = Object.fromEntries(letters.map((k, n) => [k, row[letterIds[n]]])); },
    });
    const answer = letters.reduce((best, k) => (scores[k] > scores[best] ? k : best), letters[0]);
    return { scores, answer };
  }

  async release(): Promise<void> {
    await this.vision.release();
    await this.decoder.release();
  }
}
