/**
 * Experiment configuration: one `configs/<name>/config.json` per experiment. Components are named by
 * plugin id (`{"use": "llama3", "with": {...}}`), so swapping an LLM family is a one-word change.
 * The schema below is the whole contract; `validateExperiment` reports the first violation with its
 * config path (`model.block[1].with.layers`).
 */
import { Ajv, type ErrorObject } from 'ajv';
import { configError } from './errors.ts';
import type { Vec3 } from './shapes.ts';
import { readJsonFile } from './workspace.ts';

export interface PluginRef<O = Record<string, unknown>> {
  use: string;
  with?: O;
  /** Name of this item, so a later item can `share` its weights. */
  name?: string;
  /** Re-use the module (same weights) of the earlier item with this `name`. */
  share?: string;
}

export interface LossRef extends PluginRef { weight: number }

export type IntensityOp =
  | { op: 'percentile-clip'; lower: number; upper: number }
  | { op: 'window'; min: number; max: number }
  | { op: 'minmax' }
  | { op: 'zscore'; mask?: 'none' | 'nonzero' };

export interface DataConfig {
  /**
   * How pairs are made: `learn2reg` reads a Learn2Reg dataset JSON, `pairs` a JSON/CSV list of pairs,
   * `oai` / `oasis` / `abdomen-mrct` / `srreg` apply the papers' protocols to the scans found,
   * `synthetic-deformation` warps real template anatomy with known smooth random fields (demo).
   */
  protocol: 'learn2reg' | 'pairs' | 'oai' | 'oasis' | 'abdomen-mrct' | 'srreg' | 'synthetic-deformation';
  /** Dataset folder, relative to the workspace root unless absolute. `$LLMED_DATA/<name>` overrides. */
  root: string;
  /** Dataset JSON / pairs file inside `root`. */
  manifest?: string;
  /** What the data is called in outputs. Stand-in data must say so ("OASIS proxy"). */
  title: string;
  /** Exactly what to download and where to put it, printed when `root` is missing. */
  howToGet: string;
  modality?: { moving: string; fixed: string };
  /** For `synthetic-deformation`: template image and labels, and how many deformed copies to make. */
  template?: { image: string; labels?: string; copies: number; maxDisplacement: number; smoothness: number; seed: number };
  preprocess: {
    /** Grid the prepared volumes are resampled to (NIfTI axis order). */
    shape: Vec3;
    /** Reorient to this axis code before resampling. */
    orientation?: string;
    moving: IntensityOp[];
    fixed: IntensityOp[];
    labels?: { values?: number[]; table?: Record<string, number>; mergeLeftRight?: boolean };
  };
  /** Label id → name, for tables and pictures. */
  labelNames?: Record<string, string>;
}

export interface ModelConfig {
  /** Network input grid (NIfTI axis order), every dimension divisible by 16. */
  input: { shape: Vec3; channels: number };
  encoder: PluginRef;
  /** 1/16 feature maps → token sequence. */
  tokens: PluginRef;
  /** The LLM block: adapters and LLM layers, applied in order. */
  block: PluginRef[];
  /** Tokens → per-stage feature maps for the decoder. */
  stageAdapters: PluginRef;
  decoder: PluginRef;
}

export interface TrainConfig {
  iterations: number;
  lr: number;
  /** Per cascade phase: linear warm-up over the first `warmup` fraction, then constant or cosine decay to 0. */
  lrSchedule: 'constant' | 'cosine';
  warmup: number;
  optimizer: 'adam' | 'adamw';
  batchSize: number;
  /** Mixed precision: bf16 (or fp16) autocast on CUDA, bf16 autocast on CPUs with bf16 arithmetic (AMX /
   * AVX512-BF16; about 2x faster steps there); other CPUs train in float32. */
  amp: boolean;
  seed: number;
  validateEvery: number;
  checkpointEvery: number;
  /** For a cascade decoder: per-step iterations and schedule. */
  cascade?: { schedule: 'step-by-step' | 'joint'; iterations: number[] };
  /** Minutes of wall time after which training stops cleanly (0 = no limit). */
  timeBudgetMinutes?: number;
  /** Random augmentation of each drawn training pair (bridge/python/llmed/augment.py); off by default. */
  augment?: {
    swap: number;
    warpFixed: { probability: number; maxDisplacement: number; spacing: number };
    flip: { probability: number; axes: number[] };
    warpBoth: { probability: number; maxDisplacement: number; spacing: number };
  };
}

export interface ExperimentConfig {
  $schema?: string;
  /** Absent or 'registration' here; report-generation experiments are config-report.ts's. */
  task?: 'registration';
  name: string;
  /** Which published method this experiment follows (LLaMA-Reg, LLM-Morph), or 'custom'. */
  method: string;
  description: string;
  data: DataConfig;
  model: ModelConfig;
  loss: LossRef[];
  train: TrainConfig;
  evaluate: { metrics: string[]; labels?: number[]; pairs?: number };
  export?: { opset: number };
}

const vec3 = { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 3, maxItems: 3 };
const pluginRef = {
  type: 'object',
  required: ['use'],
  additionalProperties: false,
  properties: {
    use: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*$' },
    with: { type: 'object' },
    name: { type: 'string' },
    share: { type: 'string' },
  },
};
const intensityOp = {
  type: 'object',
  required: ['op'],
  properties: { op: { enum: ['percentile-clip', 'window', 'minmax', 'zscore'] } },
};

export const experimentSchema = {
  type: 'object',
  required: ['name', 'method', 'description', 'data', 'model', 'loss', 'train', 'evaluate'],
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    task: { const: 'registration' },
    name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*$' },
    method: { type: 'string' },
    description: { type: 'string' },
    data: {
      type: 'object',
      required: ['protocol', 'root', 'title', 'howToGet', 'preprocess'],
      additionalProperties: false,
      properties: {
        protocol: { enum: ['learn2reg', 'pairs', 'oai', 'oasis', 'abdomen-mrct', 'srreg', 'synthetic-deformation'] },
        root: { type: 'string', minLength: 1 },
        manifest: { type: 'string' },
        title: { type: 'string', minLength: 1 },
        howToGet: { type: 'string', minLength: 1 },
        modality: { type: 'object', required: ['moving', 'fixed'], additionalProperties: false, properties: { moving: { type: 'string' }, fixed: { type: 'string' } } },
        template: {
          type: 'object', required: ['image', 'copies'], additionalProperties: false,
          properties: {
            image: { type: 'string' }, labels: { type: 'string' },
            copies: { type: 'integer', minimum: 2 }, maxDisplacement: { type: 'number', minimum: 0, default: 4 },
            smoothness: { type: 'number', exclusiveMinimum: 0, default: 12 }, seed: { type: 'integer', default: 0 },
          },
        },
        preprocess: {
          type: 'object', required: ['shape', 'moving', 'fixed'], additionalProperties: false,
          properties: {
            shape: vec3,
            orientation: { type: 'string', pattern: '^[LRAPSI]{3}$' },
            moving: { type: 'array', items: intensityOp },
            fixed: { type: 'array', items: intensityOp },
            labels: {
              type: 'object', additionalProperties: false,
              properties: {
                values: { type: 'array', items: { type: 'integer', minimum: 0 } },
                table: { type: 'object', additionalProperties: { type: 'integer', minimum: 0 } },
                mergeLeftRight: { type: 'boolean' },
              },
            },
          },
        },
        labelNames: { type: 'object', additionalProperties: { type: 'string' } },
      },
    },
    model: {
      type: 'object',
      required: ['input', 'encoder', 'tokens', 'block', 'stageAdapters', 'decoder'],
      additionalProperties: false,
      properties: {
        input: { type: 'object', required: ['shape', 'channels'], additionalProperties: false, properties: { shape: vec3, channels: { type: 'integer', minimum: 1 } } },
        encoder: pluginRef,
        tokens: pluginRef,
        block: { type: 'array', items: pluginRef },
        stageAdapters: pluginRef,
        decoder: pluginRef,
      },
    },
    loss: {
      type: 'array', minItems: 1,
      items: { ...pluginRef, required: ['use', 'weight'], properties: { ...pluginRef.properties, weight: { type: 'number', minimum: 0 } } },
    },
    train: {
      type: 'object',
      required: ['iterations', 'lr'],
      additionalProperties: false,
      properties: {
        iterations: { type: 'integer', minimum: 1 },
        lr: { type: 'number', exclusiveMinimum: 0 },
        // The lr of each step (llmed.train.lr_at), per cascade phase: a linear warm-up over the first `warmup`
        // fraction of the phase's iterations, then `lr` ('constant') or a cosine decay to 0 at the phase's end
        // ('cosine'). A run stopped early by its time budget stops part-way down the curve.
        lrSchedule: { enum: ['constant', 'cosine'], default: 'constant' },
        warmup: { type: 'number', minimum: 0, maximum: 1, default: 0 },
        optimizer: { enum: ['adam', 'adamw'], default: 'adam' },
        batchSize: { type: 'integer', minimum: 1, default: 1 },
        amp: { type: 'boolean', default: true },
        seed: { type: 'integer', default: 0 },
        validateEvery: { type: 'integer', minimum: 1, default: 2000 },
        checkpointEvery: { type: 'integer', minimum: 1, default: 2000 },
        timeBudgetMinutes: { type: 'number', minimum: 0, default: 0 },
        // New pairs from each drawn one (llmed.augment): `swap` = probability of exchanging moving and fixed;
        // `warpFixed` = the fixed image resampled by a random smooth field (uniform ±maxDisplacement voxels at
        // control points every `spacing` voxels); `flip` = both images mirrored along each of `axes` (NIfTI axes) with
        // `probability`; `warpBoth` = both images resampled by one random field (as warpFixed). Validation and test
        // pairs are never augmented.
        augment: {
          type: 'object', additionalProperties: false, default: {},
          properties: {
            swap: { type: 'number', minimum: 0, maximum: 1, default: 0 },
            warpFixed: {
              type: 'object', additionalProperties: false, default: {},
              properties: {
                probability: { type: 'number', minimum: 0, maximum: 1, default: 0 },
                maxDisplacement: { type: 'number', minimum: 0, default: 2 },
                spacing: { type: 'number', exclusiveMinimum: 1, default: 8 },
              },
            },
            flip: {
              type: 'object', additionalProperties: false, default: {},
              properties: {
                probability: { type: 'number', minimum: 0, maximum: 1, default: 0 },
                axes: { type: 'array', items: { enum: [0, 1, 2] }, uniqueItems: true, default: [0] },
              },
            },
            warpBoth: {
              type: 'object', additionalProperties: false, default: {},
              properties: {
                probability: { type: 'number', minimum: 0, maximum: 1, default: 0 },
                maxDisplacement: { type: 'number', minimum: 0, default: 2 },
                spacing: { type: 'number', exclusiveMinimum: 1, default: 8 },
              },
            },
          },
        },
        cascade: {
          type: 'object', required: ['schedule', 'iterations'], additionalProperties: false,
          properties: { schedule: { enum: ['step-by-step', 'joint'] }, iterations: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 1 } },
        },
      },
    },
    evaluate: {
      type: 'object', required: ['metrics'], additionalProperties: false,
      properties: { metrics: { type: 'array', items: { type: 'string' } }, labels: { type: 'array', items: { type: 'integer' } }, pairs: { type: 'integer', minimum: 1 } },
    },
    export: { type: 'object', additionalProperties: false, properties: { opset: { type: 'integer', minimum: 20, default: 20 } } },
  },
} as const;

const ajv = new Ajv({ allErrors: false, useDefaults: true, strict: false });
const validateFn = ajv.compile(experimentSchema);

/** `/model/block/1/with` → `model.block[1].with` */
export function jsonPointerToPath(pointer: string, prefix = ''): string {
  let out = prefix;
  for (const part of pointer.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(key) ? `[${key}]` : out ? `.${key}` : key;
  }
  return out || '(top level)';
}

/** Describe one ajv error as `path: problem`. */
export function describeAjvError(err: ErrorObject, prefix = ''): { path: string; message: string } {
  let path = jsonPointerToPath(err.instancePath, prefix);
  let message = err.message ?? 'is invalid';
  const p = err.params as Record<string, unknown>;
  if (err.keyword === 'additionalProperties') {
    path = jsonPointerToPath(`${err.instancePath}/${String(p.additionalProperty)}`, prefix);
    message = 'is not a known setting';
  } else if (err.keyword === 'required') {
    path = jsonPointerToPath(`${err.instancePath}/${String(p.missingProperty)}`, prefix);
    message = 'is required';
  } else if (err.keyword === 'enum') {
    message = `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return { path, message };
}

/** Validate (and default-fill) a parsed config; throws a config error naming file and path. */
export function validateExperiment(raw: unknown, file: string): ExperimentConfig {
  const cfg = structuredClone(raw);
  if (!validateFn(cfg)) {
    const { path, message } = describeAjvError(validateFn.errors![0]);
    throw configError(`${file} ${path}`, message, 'see packages/core/src/config.ts for the schema');
  }
  const c = cfg as unknown as ExperimentConfig;
  // Cross-field rules the schema cannot say.
  const names = new Set<string>();
  c.model.block.forEach((item, i) => {
    if (item.share && !names.has(item.share)) throw configError(`${file} model.block[${i}].share`, `names '${item.share}', but no earlier block item has that name`);
    if (item.share && item.with) throw configError(`${file} model.block[${i}].with`, 'an item that shares weights takes its options from the shared item; remove "with"');
    if (item.name) {
      if (names.has(item.name)) throw configError(`${file} model.block[${i}].name`, `name '${item.name}' is used twice`);
      names.add(item.name);
    }
  });
  if (c.train.cascade && c.model.decoder.use !== 'cascade') throw configError(`${file} train.cascade`, `is set, but model.decoder.use is '${c.model.decoder.use}', not 'cascade'`);
  if (c.train.cascade) {
    const total = c.train.cascade.iterations.reduce((a, b) => a + b, 0);
    if (total !== c.train.iterations) throw configError(`${file} train.iterations`, `is ${c.train.iterations}, but train.cascade.iterations add up to ${total}`);
  }
  if (c.data.protocol === 'synthetic-deformation' && !c.data.template) throw configError(`${file} data.template`, "is required when data.protocol is 'synthetic-deformation'");
  return c;
}

export function loadExperimentConfig(file: string): ExperimentConfig {
  return validateExperiment(readJsonFile(file), file);
}
