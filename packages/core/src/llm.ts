/**
 * Descriptor factory for Hugging Face decoder-layer backbones, for the LLM family plugins to call. It
 * knows no family: each plugin describes its own in its folder's `family.json` (read with
 * `readLLMFamily`), which its Python package reads too (`llmed.llm.Family.from_json`), so the facts
 * both languages need (accepted model types, Hugging Face repo, LoRA targets, transformers classes,
 * defaults) have one home. Public, so a third-party family plugin looks exactly like a first-party one.
 *
 * The backbone loads chosen decoder layers from a local Hugging Face checkpoint folder (config.json +
 * safetensors), reading only those layers' tensors, frozen unless LoRA is on. Its token width must equal
 * the checkpoint's hidden size; `resolve` reads config.json (when the folder exists) so that a wrong
 * `hiddenSize` or a layer index out of range fails at `llmed config check`, before Python starts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { causalLMFacet } from './causal-lm.ts';
import { configError, pluginError } from './errors.ts';
import { definePlugin, type PluginDescriptor, type PythonEntry } from './plugin.ts';
import { requireInput, ShapeMismatch } from './shapes.ts';

export interface LoraOptions { rank: number; alpha: number; dropout: number; targets: string[] }

export interface LLMBackboneOptions {
  /** Hugging Face checkpoint folder (config.json + *.safetensors), relative to the workspace root. */
  checkpoint: string;
  /** 0-based decoder layer indices, applied in order. */
  layers: number[];
  /** Token width of the layers; must equal the checkpoint's hidden_size. */
  hiddenSize: number;
  /** Number of decoder layers in the checkpoint (filled from config.json when present). */
  numLayers: number;
  /** `pretrained` loads the layers' tensors; `random` keeps the architecture with fresh weights (ablation). */
  init: 'pretrained' | 'random';
  /** Trainable (from scratch or fine-tuned) instead of frozen — the LLaMA-Reg "LLaMA 2" ablation. */
  trainable: boolean;
  /** The registration papers use the frozen layer as a bidirectional set encoder; `causal` is HF's default. */
  attention: 'bidirectional' | 'causal';
  /** Rotary position embedding over the token raster (LLaMA-Reg applies none). */
  rope: boolean;
  /** Apply the model's final RMSNorm after the layers (LLaMA-Reg applies a ones-weight RMSNorm). */
  finalNorm: 'none' | 'ones' | 'checkpoint';
  lora: LoraOptions | null;
  /** Set by resolve: whether the checkpoint folder was found at composition time. */
  checkpointFound?: boolean;
}

/**
 * Where a family's classes live in transformers (the `transformers` object of family.json). Only Python
 * imports them; TypeScript carries them so that one file describes the family. `model` and `causalLM`
 * name the whole language model, for uses beyond a stack of decoder layers (report generation).
 */
export interface TransformersClasses {
  module: string;
  config: string;
  decoderLayer: string;
  rotaryEmbedding: string;
  rmsNorm: string;
  model?: string;
  causalLM?: string;
}

export interface LLMFamily {
  id: string;
  title: string;
  /** transformers model_type values this family accepts in config.json. */
  modelTypes: string[];
  defaults: { checkpoint: string; layers: number[]; hiddenSize: number; numLayers: number };
  /** The Hugging Face repository whose files the default checkpoint folder should hold. */
  huggingFaceRepo: string;
  /** Names of the q/k/v projections for LoRA (Phi-3 packs them into one qkv_proj). */
  loraTargets: string[];
  /** The transformers classes (family.json); read by Python. */
  transformers?: TransformersClasses;
  python: PythonEntry;
  reference?: string;
  /** Report generation: the end-of-text token when it is not the tokenizer's eos (causal-lm.ts; optional in family.json). */
  endOfText?: string;
}

/** What a plugin's family.json holds: the family without the Python entry, which the descriptor adds. */
export type LLMFamilyFile = Omit<LLMFamily, 'python'> & { transformers: TransformersClasses };

/**
 * Read an LLM family plugin's `family.json` (`relativePath` from the module at `moduleUrl`, usually
 * `import.meta.url` of src/index.ts and '../family.json'). A missing file or field is a plugin error
 * naming the file, raised when the plugin is loaded.
 */
export function readLLMFamily(moduleUrl: string, relativePath = '../family.json'): LLMFamilyFile {
  const file = fileURLToPath(new URL(relativePath, moduleUrl));
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw pluginError(file, existsSync(file) ? `not valid JSON: ${(e as Error).message}` : 'the family description does not exist', 'an LLM family plugin keeps family.json next to its package.json (docs/writing-a-plugin.md)');
  }
  const o = (raw ?? {}) as Record<string, any>;
  const bad = (what: string) => pluginError(file, `needs ${what}`, 'see plugins/llama3/family.json for a complete one');
  const str = (v: unknown) => typeof v === 'string' && v.length > 0;
  const strs = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every(str);
  const int = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
  if (!str(o.id)) throw bad('"id"');
  if (!str(o.title)) throw bad('"title"');
  if (!strs(o.modelTypes)) throw bad('"modelTypes": the model_type values of config.json it accepts');
  if (!str(o.huggingFaceRepo)) throw bad('"huggingFaceRepo"');
  if (!strs(o.loraTargets)) throw bad('"loraTargets": the names of the projections LoRA may adapt');
  const d = o.defaults ?? {};
  if (!str(d.checkpoint) || !Array.isArray(d.layers) || !d.layers.every(int) || !int(d.hiddenSize) || !int(d.numLayers)) {
    throw bad('"defaults": {"checkpoint": folder, "layers": [indices], "hiddenSize": n, "numLayers": n}');
  }
  const t = o.transformers ?? {};
  for (const key of ['module', 'config', 'decoderLayer', 'rotaryEmbedding', 'rmsNorm'] as const) {
    if (!str(t[key])) throw bad(`"transformers.${key}"`);
  }
  return o as LLMFamilyFile;
}

export function llmBackboneDescriptor(f: LLMFamily): PluginDescriptor<LLMBackboneOptions> {
  return definePlugin<LLMBackboneOptions>({
    id: f.id,
    kind: 'LLMBackbone',
    summary: `${f.title} decoder layer(s) from a local Hugging Face checkpoint, frozen, optional LoRA`,
    reference: f.reference,
    python: f.python,
    // report generation uses the same family as a whole causal LM (causal-lm.ts)
    causalLM: causalLMFacet(f),
    options: {
      type: 'object',
      properties: {
        checkpoint: { type: 'string', default: f.defaults.checkpoint },
        layers: { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1, default: f.defaults.layers },
        hiddenSize: { type: 'integer', minimum: 1, default: f.defaults.hiddenSize },
        numLayers: { type: 'integer', minimum: 1, default: f.defaults.numLayers },
        init: { enum: ['pretrained', 'random'], default: 'pretrained' },
        trainable: { type: 'boolean', default: false },
        attention: { enum: ['bidirectional', 'causal'], default: 'bidirectional' },
        rope: { type: 'boolean', default: false },
        finalNorm: { enum: ['none', 'ones', 'checkpoint'], default: 'none' },
        lora: {
          anyOf: [
            { type: 'null' },
            {
              type: 'object', additionalProperties: false,
              properties: {
                rank: { type: 'integer', minimum: 1, default: 64 },
                alpha: { type: 'number', exclusiveMinimum: 0, default: 64 },
                dropout: { type: 'number', minimum: 0, maximum: 1, default: 0 },
                targets: { type: 'array', items: { enum: f.loraTargets }, minItems: 1, default: f.loraTargets },
              },
            },
          ],
          default: null,
        },
        checkpointFound: { type: 'boolean' },
      },
    },
    resolve(options, ctx) {
      const dir = isAbsolute(options.checkpoint) ? options.checkpoint : resolvePath(ctx.workspaceRoot, options.checkpoint);
      const cfgFile = join(dir, 'config.json');
      const out = { ...options, checkpointFound: existsSync(cfgFile) };
      // JSON-Schema defaults are not applied inside anyOf branches: fill LoRA's here, so a config may say
      // just {"rank": 8} and the spec (and Python) still get alpha, dropout and the target projections.
      if (out.lora) out.lora = Object.assign({ rank: 64, alpha: 64, dropout: 0, targets: [...f.loraTargets] }, out.lora);
      if (out.checkpointFound) {
        let hf: Record<string, unknown>;
        try { hf = JSON.parse(readFileSync(cfgFile, 'utf8')); } catch (e) { throw configError(cfgFile, `not valid JSON: ${(e as Error).message}`); }
        const textCfg = (hf.text_config as Record<string, unknown> | undefined) ?? hf;
        const hidden = Number(textCfg.hidden_size);
        const n = Number(textCfg.num_hidden_layers);
        const mt = String(textCfg.model_type ?? hf.model_type ?? '');
        if (f.modelTypes.length && !f.modelTypes.includes(mt)) {
          throw new ShapeMismatch(`checkpoint ${cfgFile} has model_type '${mt}', which is not a ${f.title} model (${f.modelTypes.join(', ')})`, { option: 'checkpoint' });
        }
        if (hidden !== options.hiddenSize) {
          throw new ShapeMismatch(`the config says hiddenSize ${options.hiddenSize}, but checkpoint ${cfgFile} has hidden_size ${hidden}`, { option: 'hiddenSize' });
        }
        out.numLayers = n;
      }
      const badLayer = out.layers.find((l) => l >= out.numLayers);
      if (badLayer !== undefined) {
        throw new ShapeMismatch(`layer index ${badLayer} is out of range: ${f.title} ${out.checkpointFound ? `checkpoint ${options.checkpoint} ` : ''}has ${out.numLayers} layers (0..${out.numLayers - 1})`, { option: 'layers' });
      }
      return out;
    },
    missing(o, ctx) {
      if (o.init === 'random') return undefined;
      const dir = isAbsolute(o.checkpoint) ? o.checkpoint : resolvePath(ctx.workspaceRoot, o.checkpoint);
      if (existsSync(join(dir, 'config.json'))) return undefined;
      return `${f.title} checkpoint folder ${dir} is missing: download config.json and the *.safetensors files (with model.safetensors.index.json when sharded) of ${f.huggingFaceRepo} from Hugging Face and put them in that folder (only layers ${o.layers.join(', ')} are read), or set "checkpoint" to where they are. Nothing is downloaded at run time.`;
    },
    shape(inputs, o) {
      const t = requireInput(inputs, 'tokens', f.id);
      if (t.width !== o.hiddenSize) {
        throw new ShapeMismatch(`token width ${t.width} does not match the ${f.title} hidden size ${o.hiddenSize}`, { option: 'hiddenSize', input: 'tokens' });
      }
      return { ...t };
    },
    example: {
      options: { checkpoint: `test/fixtures/tiny-${f.id}`, layers: [0], hiddenSize: 64, numLayers: 2 },
      inputs: { tokens: { type: 'tokens', length: 8, width: 64, grid: [2, 2, 2] } },
      notes: 'tests build the tiny checkpoint folder with transformers before running the example',
    },
  });
}
