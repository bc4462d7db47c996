/**
 * The causal-language-model form of an LLM family, for report generation: the whole decoder (embeddings,
 * every layer, final norm, LM head) from a local Hugging Face checkpoint folder, with LoRA, and the
 * tokenizer with one added `<im_patch>` token. It is a facet of the family's LLMBackbone descriptor
 * (`descriptor.causalLM`), so `"llm": {"use": "qwen2"}` in a report config picks the same family as
 * `"use": "qwen2"` in a registration block; the Python side (bridge/python/llmed/causal_lm.py) builds it
 * with transformers' Auto classes and reads the family's facts (accepted model types, end-of-text token)
 * from the options filled here — there is no family table on the Python side.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { configError } from './errors.ts';
import type { JsonSchema, ShapeContext } from './plugin.ts';
import { requireInput, ShapeMismatch, type Shape, type ShapeInputs } from './shapes.ts';

export interface CausalLMLora { rank: number; alpha: number; dropout: number; targets: 'all-linear' | string[] }

export interface CausalLMOptions {
  checkpoint: string;
  hiddenSize: number;
  /** Filled from config.json when the folder exists. */
  vocabSize?: number;
  numLayers?: number;
  /** 'pretrained' reads the checkpoint's weights; 'random' only its config.json (tests, ablations). */
  init: 'pretrained' | 'random';
  lora: CausalLMLora | null;
  /** The placeholder token the image tokens replace; added to the tokenizer as one special token. */
  imageToken: string;
  /** The token that ends a report; null: the tokenizer's own eos token. */
  endOfText: string | null;
  /** Set by resolve. */
  checkpointFound?: boolean;
  family?: { id: string; title: string; modelTypes: string[] };
}

export interface CausalLMFacet {
  options: JsonSchema;
  resolve(options: CausalLMOptions, ctx: ShapeContext): CausalLMOptions;
  missing(options: CausalLMOptions, ctx: ShapeContext): string | undefined;
  shape(inputs: ShapeInputs, options: CausalLMOptions): Shape;
}

export interface CausalLMFamilyFacts {
  id: string;
  title: string;
  modelTypes: string[];
  defaults: { checkpoint: string; hiddenSize: number };
  huggingFaceRepo: string;
  /** The family's end-of-text token when it is not the tokenizer's eos (Llama-3 base: '<|end_of_text|>'). */
  endOfText?: string;
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model'];

function folder(checkpoint: string, ctx: ShapeContext): string {
  return isAbsolute(checkpoint) ? checkpoint : resolvePath(ctx.workspaceRoot, checkpoint);
}

export function causalLMFacet(f: CausalLMFamilyFacts): CausalLMFacet {
  const loraDefaults = { rank: 16, alpha: 32, dropout: 0.05, targets: 'all-linear' as const };
  return {
    options: {
      type: 'object',
      properties: {
        checkpoint: { type: 'string', default: f.defaults.checkpoint },
        hiddenSize: { type: 'integer', minimum: 1, default: f.defaults.hiddenSize },
        vocabSize: { type: 'integer', minimum: 1 },
        numLayers: { type: 'integer', minimum: 1 },
        init: { enum: ['pretrained', 'random'], default: 'pretrained' },
        // M3D's TrainingArguments defaults (spec §3.3): r 16, alpha 32, dropout 0.05, every linear
        // projection of the decoder ('all-linear' excludes the LM head).
        lora: {
          anyOf: [
            { type: 'null' },
            {
              type: 'object', additionalProperties: false,
              properties: {
                rank: { type: 'integer', minimum: 1, default: loraDefaults.rank },
                alpha: { type: 'number', exclusiveMinimum: 0, default: loraDefaults.alpha },
                dropout: { type: 'number', minimum: 0, maximum: 1, default: loraDefaults.dropout },
                targets: { anyOf: [{ const: 'all-linear' }, { type: 'array', items: { type: 'string' }, minItems: 1 }], default: loraDefaults.targets },
              },
            },
          ],
          default: loraDefaults,
        },
        imageToken: { type: 'string', minLength: 1, default: '<im_patch>' },
        endOfText: { anyOf: [{ type: 'null' }, { type: 'string', minLength: 1 }], default: f.endOfText ?? null },
        checkpointFound: { type: 'boolean' },
        family: { type: 'object' },
      },
    },
    resolve(options, ctx) {
      const dir = folder(options.checkpoint, ctx);
      const cfgFile = join(dir, 'config.json');
      const out: CausalLMOptions = { ...options, checkpointFound: existsSync(cfgFile), family: { id: f.id, title: f.title, modelTypes: [...f.modelTypes] } };
      // Schema defaults are not applied inside anyOf branches: {"rank": 8} still gets alpha, dropout, targets.
      if (out.lora) out.lora = { ...loraDefaults, ...out.lora };
      if (out.checkpointFound) {
        let hf: Record<string, unknown>;
        try { hf = JSON.parse(readFileSync(cfgFile, 'utf8')); } catch (e) { throw configError(cfgFile, `not valid JSON: ${(e as Error).message}`); }
        const text = (hf.text_config as Record<string, unknown> | undefined) ?? hf;
        const mt = String(text.model_type ?? hf.model_type ?? '');
        if (f.modelTypes.length && !f.modelTypes.includes(mt)) {
          throw new ShapeMismatch(`checkpoint ${cfgFile} has model_type '${mt}', which is not a ${f.title} model (${f.modelTypes.join(', ')})`, { option: 'checkpoint' });
        }
        const hidden = Number(text.hidden_size);
        if (hidden !== options.hiddenSize) {
          throw new ShapeMismatch(`the config says hiddenSize ${options.hiddenSize}, but checkpoint ${cfgFile} has hidden_size ${hidden}`, { option: 'hiddenSize' });
        }
        out.vocabSize = Number(text.vocab_size);
        out.numLayers = Number(text.num_hidden_layers);
      }
      return out;
    },
    missing(o, ctx) {
      const dir = folder(o.checkpoint, ctx);
      const has = (name: string) => existsSync(join(dir, name));
      const lacking: string[] = [];
      if (!has('config.json')) lacking.push('config.json');
      const weights = existsSync(dir) && readdirSync(dir).some((n) => n.endsWith('.safetensors'));
      if (o.init === 'pretrained' && !weights) lacking.push('the *.safetensors weights (with model.safetensors.index.json when sharded)');
      if (!TOKENIZER_FILES.some(has)) lacking.push('the tokenizer (tokenizer.json, or tokenizer.model, with tokenizer_config.json and special_tokens_map.json)');
      if (!lacking.length) return undefined;
      // a folder that already has a config.json holds some model: ask for that model's files, not the family default's
      const model = has('config.json') ? 'the model whose config.json is there' : f.huggingFaceRepo;
      return `${f.title} causal LM checkpoint folder ${dir} lacks ${lacking.join(', ')}: put those files of ${model} (from Hugging Face) in that folder, or set "checkpoint" to where they are. Nothing is downloaded at run time.`;
    },
    shape(inputs, o) {
      const t = requireInput(inputs, 'tokens', f.id);
      if (t.width !== o.hiddenSize) {
        throw new ShapeMismatch(`image tokens are ${t.width} wide, but the ${f.title} hidden size is ${o.hiddenSize}`, { option: 'hiddenSize', input: 'tokens' });
      }
      return { ...t };
    },
  };
}
