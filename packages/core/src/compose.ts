/**
 * Composition: an experiment config + the registry → a ModelSpec, the fully resolved description the
 * Python side builds the network from. Every plugin's options are validated (and default-filled) against
 * its schema, and every shape rule runs along the chain
 *
 *   image → encoder → pyramid → tokens → block items (adapters, LLM layers) → stage adapters → decoder
 *
 * so a composition that cannot run fails here, naming the config file, the config path and both numbers.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { configError, LlmedError, shapeError } from './errors.ts';
import { describeAjvError, type ExperimentConfig, type PluginRef } from './config.ts';
import { isReportSpec, type ReportModelSpec } from './compose-report.ts';
import type { PluginDescriptor, PluginKind, PythonEntry, ShapeContext } from './plugin.ts';
import type { Registry } from './registry.ts';
import { fmt3, ShapeMismatch, type FieldsShape, type PyramidShape, type Shape, type ShapeInputs, type StagesShape, type TokenShape, type VolumeShape } from './shapes.ts';

export const MODEL_SPEC_VERSION = 1;

/** One built component of the model. */
export interface SpecNode {
  /** Config path of the reference (`model.block[1]`). */
  path: string;
  id: string;
  kind: PluginKind;
  /** Options after schema validation and defaults (and `resolve` from disk). */
  options: Record<string, unknown>;
  python?: PythonEntry;
  inputs: ShapeInputs;
  output?: Shape;
  name?: string;
  /** Path of the node whose module (weights) this node re-uses. */
  sharesWith?: string;
}

export interface ModelSpec {
  version: typeof MODEL_SPEC_VERSION;
  experiment: string;
  configFile: string;
  input: VolumeShape;
  encoder: SpecNode & { output: PyramidShape };
  tokens: SpecNode & { output: TokenShape };
  block: (SpecNode & { output: TokenShape })[];
  stageAdapters: SpecNode & { output: StagesShape };
  decoder: SpecNode & { output: FieldsShape };
  losses: (SpecNode & { weight: number })[];
}

const ajv = new Ajv({ allErrors: false, useDefaults: true, strict: false });
const validators = new WeakMap<PluginDescriptor<any>, ValidateFunction>();

/** Validate a plugin's `with` against its schema; defaults are filled into a copy. */
export function pluginOptions(d: PluginDescriptor<any>, given: unknown, where: string): Record<string, unknown> {
  let v = validators.get(d);
  if (!v) {
    v = ajv.compile({ additionalProperties: false, ...d.options });
    validators.set(d, v);
  }
  const opts = structuredClone(given ?? {}) as Record<string, unknown>;
  if (!v(opts)) {
    const { path, message } = describeAjvError(v.errors![0], where);
    const known = Object.keys((d.options.properties as object) ?? {});
    const hint = message === 'is not a known setting' ? `options of ${d.id}: ${known.join(', ')}` : undefined;
    throw configError(path, message, hint);
  }
  return opts;
}

function describeShape(s: Shape | undefined): string {
  if (!s) return 'nothing';
  switch (s.type) {
    case 'volume': return `${s.channels}-channel volume ${fmt3(s.spatial)}`;
    case 'pyramid': return `pyramid ${s.levels.map((l) => `1/${l.scale}:${l.channels}ch ${fmt3(l.spatial)}`).join(', ')}`;
    case 'tokens': return `${s.length} tokens × ${s.width} (grid ${fmt3(s.grid)})`;
    case 'stages': return `stages ${s.stages.map((l) => `1/${l.scale}:${l.channels}ch`).join(', ')}`;
    case 'fields': return `fields at ${s.fields.map((f) => `1/${f.scale}`).join(', ')}`;
  }
}

/** Compose the ModelSpec of an experiment, or throw the first composition error. */
export function composeModel(cfg: ExperimentConfig, configFile: string, registry: Registry, ctx: ShapeContext): ModelSpec {
  const at = (path: string) => `${configFile} ${path}`;
  const shape = cfg.model.input.shape;
  const bad = shape.findIndex((n) => n % 16 !== 0);
  if (bad >= 0) {
    throw shapeError(at(`model.input.shape[${bad}]`), `input dimension ${shape[bad]} is not divisible by 16 (shape ${fmt3(shape)}); the encoder halves the grid four times`,
      `use e.g. ${fmt3(shape.map((n) => Math.max(16, Math.round(n / 16) * 16)))}`);
  }
  const image: VolumeShape = { type: 'volume', channels: cfg.model.input.channels, spatial: [...shape] as VolumeShape['spatial'] };

  // Which node produced each input, so a mismatch can name both ends.
  const producers: Partial<Record<keyof ShapeInputs, string>> = { image: 'model.input' };
  const named = new Map<string, SpecNode>();

  const build = (ref: PluginRef, path: string, kinds: PluginKind[], inputs: ShapeInputs): SpecNode => {
    let d: PluginDescriptor<any>;
    let options: Record<string, unknown>;
    let sharesWith: string | undefined;
    if (ref.share) {
      const src = named.get(ref.share)!;
      d = registry.get(src.id, src.kind, at(`${path}.share`));
      options = src.options;
      sharesWith = src.path;
    } else {
      d = registry.get(ref.use, kinds.length === 1 ? kinds[0] : undefined, at(`${path}.use`));
      if (!kinds.includes(d.kind)) throw configError(at(`${path}.use`), `'${d.id}' is a ${d.kind}; here a ${kinds.join(' or ')} is needed`);
      options = pluginOptions(d, ref.with, at(`${path}.with`));
      try {
        if (d.resolve) options = d.resolve(options, ctx);
      } catch (e) {
        throw wrap(e, d, path, inputs);
      }
    }
    if (ref.share && ref.use !== d.id) throw configError(at(`${path}.use`), `shares '${ref.share}', which is '${d.id}', but says '${ref.use}'`);
    let output: Shape | undefined;
    try {
      output = d.shape?.(inputs, options, ctx);
    } catch (e) {
      throw wrap(e, d, path, inputs);
    }
    const node: SpecNode = { path, id: d.id, kind: d.kind, options, python: d.python, inputs, output, name: ref.name, sharesWith };
    if (ref.name) named.set(ref.name, node);
    return node;
  };

  const wrap = (e: unknown, d: PluginDescriptor<any>, path: string, inputs: ShapeInputs): Error => {
    if (e instanceof LlmedError) return e;
    if (!(e instanceof ShapeMismatch)) return shapeError(at(path), `shape rule of '${d.id}' failed: ${(e as Error).message}`);
    const where = e.option ? `${path}.with.${e.option}` : path;
    const from = e.input && producers[e.input] ? `; its ${e.input} come from ${producers[e.input]} (${describeShape(inputs[e.input])})` : '';
    return shapeError(at(where), `${e.message}${from}`);
  };

  const expect = <T extends Shape['type']>(node: SpecNode, type: T): Extract<Shape, { type: T }> => {
    if (node.output?.type !== type) throw shapeError(at(node.path), `'${node.id}' gives ${describeShape(node.output)}, but ${type} are needed after it`);
    return node.output as Extract<Shape, { type: T }>;
  };

  const encoder = build(cfg.model.encoder, 'model.encoder', ['Encoder'], { image });
  const pyramid = expect(encoder, 'pyramid');
  producers.pyramid = `model.encoder (${encoder.id})`;

  const tokens = build(cfg.model.tokens, 'model.tokens', ['Adapter'], { image, pyramid });
  let tok = expect(tokens, 'tokens');
  producers.tokens = `model.tokens (${tokens.id})`;

  const block: ModelSpec['block'] = [];
  cfg.model.block.forEach((ref, i) => {
    const path = `model.block[${i}]`;
    const node = build(ref, path, ['Adapter', 'LLMBackbone'], { image, pyramid, tokens: tok });
    tok = expect(node, 'tokens');
    producers.tokens = `${path} (${node.id})`;
    block.push(node as SpecNode & { output: TokenShape });
  });

  const stageAdapters = build(cfg.model.stageAdapters, 'model.stageAdapters', ['Adapter'], { image, pyramid, tokens: tok });
  const stages = expect(stageAdapters, 'stages');
  producers.stages = `model.stageAdapters (${stageAdapters.id})`;

  const decoder = build(cfg.model.decoder, 'model.decoder', ['Decoder'], { image, pyramid, tokens: tok, stages });
  expect(decoder, 'fields');

  const losses = cfg.loss.map((ref, i) => ({ ...build(ref, `loss[${i}]`, ['Loss'], {}), weight: ref.weight }));

  return {
    version: MODEL_SPEC_VERSION,
    experiment: cfg.name,
    configFile,
    input: image,
    encoder: encoder as ModelSpec['encoder'],
    tokens: tokens as ModelSpec['tokens'],
    block,
    stageAdapters: stageAdapters as ModelSpec['stageAdapters'],
    decoder: decoder as ModelSpec['decoder'],
    losses,
  };
}

/** A spec of either task (registration: ModelSpec; report generation: ReportModelSpec, compose-report.ts). */
export type AnyModelSpec = ModelSpec | ReportModelSpec;

/** Every node of a spec, in build order. */
export function specNodes(spec: AnyModelSpec): SpecNode[] {
  const list = (x: unknown) => (Array.isArray(x) ? x : []);
  if (isReportSpec(spec)) return [spec.encoder, spec.projector, spec.llm, ...list(spec.losses)];
  return [spec.encoder, spec.tokens, ...list(spec.block), spec.stageAdapters, spec.decoder, ...list(spec.losses)];
}

/**
 * The spec as a run folder stores it: plugins named by id only, without the python entries (absolute paths
 * of this machine), which are taken from the registry whenever the run is resumed or exported.
 */
export function runFolderSpec<S extends AnyModelSpec>(spec: S): S {
  const out = structuredClone(spec);
  for (const node of specNodes(out)) delete node.python;
  return out;
}

/**
 * A spec read from a run folder may only name registered plugins (its code is taken from the registry by
 * id): an unknown id is a plugin error naming the spec file and the node, before Python starts.
 */
export function checkSpecPlugins(spec: AnyModelSpec, registry: Registry, specFile: string): void {
  const nodes = specNodes(spec).filter((n): n is SpecNode => typeof n === 'object' && n !== null);
  if (nodes.length === 0) throw configError(specFile, 'is not a ModelSpec (no encoder, block, projector, llm, decoder or losses)');
  for (const node of nodes) registry.get(String(node.id), undefined, `${specFile} ${String(node.path ?? 'a node')}`);
}

/** A short human summary of a spec, one line per node. */
export function describeSpec(spec: ModelSpec): string[] {
  const line = (n: SpecNode) => `${n.path.padEnd(20)} ${n.id.padEnd(14)} → ${describeShape(n.output)}${n.sharesWith ? ` (shares ${n.sharesWith})` : ''}`;
  return [
    `${'model.input'.padEnd(20)} ${''.padEnd(14)} → ${describeShape(spec.input)}`,
    line(spec.encoder), line(spec.tokens), ...spec.block.map(line), line(spec.stageAdapters), line(spec.decoder),
    ...spec.losses.map((l) => `${l.path.padEnd(20)} ${l.id.padEnd(14)} weight ${l.weight}`),
  ];
}
