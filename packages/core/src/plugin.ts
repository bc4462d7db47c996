/**
 * Plugin kinds, descriptors and their inversify binding.
 *
 * A plugin is a package whose `src/index.ts` exports a descriptor and, as its default export, a
 * `ContainerModule` that binds the descriptor under its id (`pluginModule(descriptor)` makes one).
 * First-party plugins are built exactly like third-party ones: nothing here is private to llmed.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ContainerModule } from 'inversify';
import type { CausalLMFacet } from './causal-lm.ts';
import type { Shape, ShapeInputs } from './shapes.ts';

export const PLUGIN_KINDS = ['Encoder', 'LLMBackbone', 'Adapter', 'Decoder', 'Loss', 'Metric'] as const;
export type PluginKind = (typeof PLUGIN_KINDS)[number];

/** A JSON Schema object (the subset ajv validates). Defaults in it are filled into the options. */
export type JsonSchema = { [key: string]: unknown };

/** Where a plugin's trainable torch module lives: `root` goes on sys.path, then `module.factory(options, inputs)`. */
export interface PythonEntry { root: string; module: string; factory: string }

/** What a shape rule gets besides its inputs. */
export interface ShapeContext {
  /** Absolute workspace root, for rules that read files (an LLM reads its checkpoint's config.json). */
  workspaceRoot: string;
}

export interface PluginDescriptor<O extends object = Record<string, any>> {
  /** Registry id, used in configs: `"use": "llama3"`. Lower-case, digits and dashes. */
  id: string;
  kind: PluginKind;
  /** One line for `llmed plugins list` and the docs table. */
  summary: string;
  /** JSON Schema of the plugin's `with` options; unknown options are errors, defaults are filled in. */
  options: JsonSchema;
  /**
   * Output shape from input shapes and (default-filled) options. Throws `ShapeMismatch` when the inputs
   * cannot be accepted. Absent for Loss and Metric plugins, which do not change shapes.
   */
  shape?(inputs: ShapeInputs, options: O, ctx: ShapeContext): Shape;
  /**
   * Options that can only be known from disk (an LLM's hidden size from its checkpoint's config.json).
   * Returns the options with those filled in, or throws `ShapeMismatch` naming the option at fault.
   */
  resolve?(options: O, ctx: ShapeContext): O;
  /**
   * What the plugin still needs on disk before it can train or run (a checkpoint folder, say), as one
   * message saying exactly what to put where; undefined when nothing is missing. `llmed config check`
   * passes without it; `llmed train` stops on it before starting Python.
   */
  missing?(options: O, ctx: ShapeContext): string | undefined;
  /**
   * The torch module factory, for plugins with trainable parts (or losses computed in training). A Metric
   * names its numpy reference here instead (`factory: 'reference'`, `reference(options, inputs) -> dict`),
   * the independent implementation its cases are checked against in Python; nothing trains it.
   */
  python?: PythonEntry;
  /**
   * TypeScript implementation used at inference/evaluation (metrics; losses used as metrics). Text metrics
   * (report generation, VQA) put a `TextMetricRuntime` here (text-metric.ts; `isTextMetricRuntime`).
   */
  runtime?: unknown;
  /**
   * A tiny configuration the registry-walking tests build and run: options and input shapes small enough
   * for a CPU forward pass in well under a second. A Metric's inputs are values, not shapes: label maps and
   * fields in the plugin-cases encoding (plugin-cases.ts; `metricInputFromCase` in @llmed/imaging), which
   * the walks run the metric on, in TypeScript and through its Python reference.
   */
  example: { options: Partial<O>; inputs: ShapeInputs & Record<string, unknown>; notes?: string };
  /** Where the design comes from (paper, section). */
  reference?: string;
  /**
   * LLMBackbone plugins only: the family as a whole causal LM for report generation (causal-lm.ts), used
   * when the plugin is a report experiment's `model.llm`. `llmBackboneDescriptor` fills it in.
   */
  causalLM?: CausalLMFacet;
}

/** Identity helper that keeps the option type of a descriptor. */
export function definePlugin<O extends object>(descriptor: PluginDescriptor<O>): PluginDescriptor<O> {
  return descriptor;
}

/** `pythonEntry(import.meta.url, '../python', 'llmed_dual_pyramid')` → absolute root for sys.path. */
export function pythonEntry(moduleUrl: string, relativeRoot: string, module: string, factory = 'build'): PythonEntry {
  return { root: resolve(dirname(fileURLToPath(moduleUrl)), relativeRoot), module, factory };
}

/** Initialisation of a convolutional plugin's weights (llmed.nn.initialise on the Python side). */
export type ConvInit = 'he' | 'pytorch';

/** The `init` option of every plugin with convolutions, one schema so the choice reads the same everywhere. */
export const convInitOption = {
  enum: ['he', 'pytorch'],
  default: 'he',
  description: "'he': He-normal convolutions and zero biases (and a near-zero flow output conv where there is one): the signal keeps its spread through the un-normalised stack and the untrained field is 0; 'pytorch': PyTorch's default init, as in the released LLaMA-Reg code (slow start: bench/results/learning-diagnosis.md)",
} as const;

/** Service identifier under which every descriptor is multi-bound. */
export const PLUGIN = Symbol.for('llmed.plugin');
/** Service identifier of one descriptor, by id. */
export const pluginKey = (id: string) => `llmed.plugin:${id}`;

/** The ContainerModule a plugin package exports as default: binds each descriptor under its id. */
export function pluginModule(...descriptors: PluginDescriptor<any>[]): ContainerModule {
  const m = new ContainerModule(({ bind }) => {
    for (const d of descriptors) {
      bind<PluginDescriptor<any>>(PLUGIN).toConstantValue(d);
      bind<PluginDescriptor<any>>(pluginKey(d.id)).toConstantValue(d);
    }
  });
  // The loader checks ids for duplicates before loading, so it needs to see them without a container.
  (m as ContainerModule & { descriptors?: PluginDescriptor<any>[] }).descriptors = descriptors;
  return m;
}

export function moduleDescriptors(m: ContainerModule): PluginDescriptor<any>[] | undefined {
  return (m as ContainerModule & { descriptors?: PluginDescriptor<any>[] }).descriptors;
}
