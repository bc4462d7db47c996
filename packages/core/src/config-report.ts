/**
 * Report-generation experiments (`"task": "report"`): a CT volume → Encoder (visual tokens) → Adapter
 * (the projector, tokens of the LLM's width) → LLMBackbone used as a causal language model → Loss
 * (next-token cross-entropy on the answer). Same config file layout and the same plugin references as a
 * registration experiment; only the model sections and the data/train settings differ. Registration
 * configs have no `task` (or `"task": "registration"`) and are validated by config.ts as before.
 */
import { Ajv } from 'ajv';
import { configError } from './errors.ts';
import { describeAjvError, experimentSchema, validateExperiment, type ExperimentConfig, type LossRef, type PluginRef } from './config.ts';
import type { Vec3 } from './shapes.ts';
import { readJsonFile } from './workspace.ts';

export interface ReportDataConfig {
  /** Where the samples come from: a dataset loader of @llmed/reports ('amos-mm', 'm3d-cap', ...) or 'prepared'. */
  source: string;
  /** Dataset folder, relative to the workspace root unless absolute. */
  root: string;
  manifest?: string;
  title: string;
  /** Exactly what to download and where to put it, printed when the data is missing. */
  howToGet: string;
  /**
   * The prepared folder the trainer reads (samples.json + prepared volumes), relative to the workspace
   * root; default `.cache/prepared/<experiment>`.
   */
  prepared?: string;
  /** 'mrg' (findings per region) or 'vqa' (multiple choice); which sample kinds train. */
  kinds: ('report' | 'vqa')[];
  regions?: string[];
  /** The CT pipeline of @llmed/reports ('m3d' | 'merlin'), its output grid (NIfTI order) and, for Merlin, its spacing (mm). */
  preprocess: { pipeline: string; shape: Vec3; spacing?: [number, number, number] };
}

export interface ReportModelConfig {
  /** Encoder input grid in NIfTI axis order (i, j, k); torch sees (K, J, I). M3D's 32×256×256 is [256, 256, 32]. */
  input: { shape: Vec3; channels: number };
  encoder: PluginRef;
  projector: PluginRef;
  llm: PluginRef;
}

/** One training stage: what trains, for how many optimiser steps, at which learning rate. */
export interface ReportStage {
  name: string;
  /** Trainable groups: 'encoder', 'projector', 'lora', 'embeddings' (input rows + LM head), 'new-tokens' (only the added rows). */
  train: string[];
  steps: number;
  lr: number;
}

export interface ReportTrainConfig {
  stages: ReportStage[];
  batchSize: number;
  gradientAccumulation: number;
  optimizer: 'adamw';
  weightDecay: number;
  schedule: 'cosine' | 'constant';
  warmup: number;
  /** Tokens per sample (image placeholders + prompt + answer), right-padded / truncated to this. */
  maxLength: number;
  precision: 'auto' | 'fp32' | 'bf16';
  gradientCheckpointing: boolean;
  seed: number;
  checkpointEvery: number;
  validateEvery: number;
  timeBudgetMinutes: number;
  /** Samples the trainer takes from the training split (0 = all). */
  maxSamples: number;
}

export interface ReportExperimentConfig {
  $schema?: string;
  task: 'report';
  name: string;
  method: string;
  description: string;
  data: ReportDataConfig;
  model: ReportModelConfig;
  loss: LossRef[];
  train: ReportTrainConfig;
  generate: { strategy: 'greedy' | 'sample'; maxNewTokens: number; temperature: number; topP: number; seed: number };
  evaluate: { metrics: string[] };
}

const props = experimentSchema.properties;
const vec3 = props.data.properties.preprocess.properties.shape;
const pluginRef = props.model.properties.encoder;

export const reportExperimentSchema = {
  type: 'object',
  required: ['task', 'name', 'method', 'description', 'data', 'model', 'loss', 'train'],
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    task: { const: 'report' },
    name: props.name,
    method: props.method,
    description: props.description,
    data: {
      type: 'object',
      required: ['source', 'root', 'title', 'howToGet', 'preprocess'],
      additionalProperties: false,
      properties: {
        source: { type: 'string', minLength: 1 },
        root: { type: 'string', minLength: 1 },
        manifest: { type: 'string' },
        title: { type: 'string', minLength: 1 },
        howToGet: { type: 'string', minLength: 1 },
        prepared: { type: 'string', minLength: 1 },
        kinds: { type: 'array', items: { enum: ['report', 'vqa'] }, minItems: 1, default: ['report'] },
        regions: { type: 'array', items: { type: 'string' } },
        preprocess: {
          type: 'object', required: ['pipeline', 'shape'], additionalProperties: false,
          properties: {
            pipeline: { type: 'string' }, shape: vec3,
            spacing: { type: 'array', items: { type: 'number', exclusiveMinimum: 0 }, minItems: 3, maxItems: 3 },
          },
        },
      },
    },
    model: {
      type: 'object',
      required: ['input', 'encoder', 'projector', 'llm'],
      additionalProperties: false,
      properties: {
        input: props.model.properties.input,
        encoder: pluginRef,
        projector: pluginRef,
        llm: pluginRef,
      },
    },
    loss: props.loss,
    train: {
      type: 'object',
      required: ['stages'],
      additionalProperties: false,
      properties: {
        stages: {
          type: 'array', minItems: 1,
          items: {
            type: 'object', required: ['name', 'train', 'steps', 'lr'], additionalProperties: false,
            properties: {
              name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*$' },
              train: { type: 'array', minItems: 1, items: { enum: ['encoder', 'projector', 'lora', 'embeddings', 'new-tokens'] } },
              steps: { type: 'integer', minimum: 1 },
              lr: { type: 'number', exclusiveMinimum: 0 },
            },
          },
        },
        batchSize: { type: 'integer', minimum: 1, default: 1 },
        gradientAccumulation: { type: 'integer', minimum: 1, default: 1 },
        optimizer: { enum: ['adamw'], default: 'adamw' },
        weightDecay: { type: 'number', minimum: 0, default: 0 },
        schedule: { enum: ['cosine', 'constant'], default: 'cosine' },
        warmup: { type: 'number', minimum: 0, maximum: 1, default: 0.1 },
        maxLength: { type: 'integer', minimum: 8, default: 512 },
        precision: { enum: ['auto', 'fp32', 'bf16'], default: 'auto' },
        gradientCheckpointing: { type: 'boolean', default: false },
        seed: { type: 'integer', default: 0 },
        checkpointEvery: { type: 'integer', minimum: 1, default: 500 },
        validateEvery: { type: 'integer', minimum: 1, default: 500 },
        timeBudgetMinutes: { type: 'number', minimum: 0, default: 0 },
        maxSamples: { type: 'integer', minimum: 0, default: 0 },
      },
    },
    generate: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        strategy: { enum: ['greedy', 'sample'], default: 'greedy' },
        maxNewTokens: { type: 'integer', minimum: 1, default: 256 },
        temperature: { type: 'number', exclusiveMinimum: 0, default: 1 },
        topP: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.9 },
        seed: { type: 'integer', default: 0 },
      },
    },
    evaluate: {
      type: 'object', additionalProperties: false, default: {},
      properties: { metrics: { type: 'array', items: { type: 'string' }, default: [] } },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: false, useDefaults: true, strict: false });
const validateFn = ajv.compile(reportExperimentSchema);

/** Whether a parsed config is a report-generation experiment (decided by its `task`). */
export function isReportConfig(raw: unknown): boolean {
  return typeof raw === 'object' && raw !== null && (raw as { task?: unknown }).task === 'report';
}

/** Validate (and default-fill) a report experiment; throws a config error naming file and path. */
export function validateReportExperiment(raw: unknown, file: string): ReportExperimentConfig {
  const cfg = structuredClone(raw);
  if (!validateFn(cfg)) {
    const { path, message } = describeAjvError(validateFn.errors![0]);
    throw configError(`${file} ${path}`, message, 'see packages/core/src/config-report.ts for the schema of report experiments');
  }
  const c = cfg as unknown as ReportExperimentConfig;
  const names = new Set<string>();
  c.train.stages.forEach((s, i) => {
    if (names.has(s.name)) throw configError(`${file} train.stages[${i}].name`, `stage name '${s.name}' is used twice`);
    names.add(s.name);
  });
  for (const [key, ref] of Object.entries({ encoder: c.model.encoder, projector: c.model.projector, llm: c.model.llm })) {
    if (ref.share) throw configError(`${file} model.${key}.share`, 'report models have one encoder, one projector and one LLM: nothing to share weights with');
  }
  return c;
}

/** A registration or a report experiment, told apart by `task`. */
export type AnyExperimentConfig = ExperimentConfig | ReportExperimentConfig;

/** Load a config of either task: report experiments here, registration ones by config.ts as before. */
export function loadAnyExperimentConfig(file: string): AnyExperimentConfig {
  const raw = readJsonFile(file);
  return isReportConfig(raw) ? validateReportExperiment(raw, file) : validateExperiment(raw, file);
}
