/**
 * Composition of a report-generation experiment: config + registry → ReportModelSpec, the resolved
 * description bridge/python/llmed/report.py builds the model from. Same SpecNode shape and the same shape
 * rules as registration (compose.ts), along the chain
 *
 *   image → encoder (visual tokens) → projector (tokens of the LLM's width) → llm (causal LM) ; losses
 *
 * so a projector grid the pool does not divide, or a projector width that is not the LLM's hidden size,
 * fails here — before Python starts — naming the config file, the config path and both numbers.
 */
import type { CausalLMFacet } from './causal-lm.ts';
import { pluginOptions, type SpecNode } from './compose.ts';
import type { ReportExperimentConfig } from './config-report.ts';
import type { PluginRef } from './config.ts';
import { configError, LlmedError, shapeError } from './errors.ts';
import type { PluginDescriptor, PluginKind, ShapeContext } from './plugin.ts';
import type { Registry } from './registry.ts';
import { fmt3, ShapeMismatch, type Shape, type ShapeInputs, type TokenShape, type VolumeShape } from './shapes.ts';

export const REPORT_SPEC_VERSION = 1;

export interface ReportModelSpec {
  version: typeof REPORT_SPEC_VERSION;
  task: 'report';
  experiment: string;
  configFile: string;
  input: VolumeShape;
  encoder: SpecNode & { output: TokenShape };
  projector: SpecNode & { output: TokenShape };
  /** The family's LLMBackbone used as a causal LM; its options are the causal-LM facet's (causal-lm.ts). */
  llm: SpecNode & { output: TokenShape };
  losses: (SpecNode & { weight: number })[];
}

/** A spec of either task. */
export function isReportSpec(spec: unknown): spec is ReportModelSpec {
  return typeof spec === 'object' && spec !== null && (spec as { task?: unknown }).task === 'report';
}

// One pseudo-descriptor per facet, so pluginOptions' validator cache (keyed by descriptor) serves it too.
const facetDescriptors = new WeakMap<CausalLMFacet, PluginDescriptor<any>>();

function describe(s: Shape | undefined): string {
  if (!s) return 'nothing';
  if (s.type === 'tokens') return `${s.length} tokens × ${s.width} (grid ${fmt3(s.grid)})`;
  if (s.type === 'volume') return `${s.channels}-channel volume ${fmt3(s.spatial)}`;
  return s.type;
}

export function composeReportModel(cfg: ReportExperimentConfig, configFile: string, registry: Registry, ctx: ShapeContext): ReportModelSpec {
  const at = (path: string) => `${configFile} ${path}`;
  const image: VolumeShape = { type: 'volume', channels: cfg.model.input.channels, spatial: [...cfg.model.input.shape] as VolumeShape['spatial'] };
  const producers: Partial<Record<keyof ShapeInputs, string>> = { image: `model.input (${describe(image)})` };

  const wrap = (e: unknown, d: PluginDescriptor<any>, path: string): Error => {
    if (e instanceof LlmedError) return e;
    if (!(e instanceof ShapeMismatch)) return shapeError(at(path), `shape rule of '${d.id}' failed: ${(e as Error).message}`);
    const where = e.option ? `${path}.with.${e.option}` : path;
    const from = e.input && producers[e.input] ? `; its ${e.input} come from ${producers[e.input]}` : '';
    return shapeError(at(where), `${e.message}${from}`);
  };

  const build = (ref: PluginRef, path: string, kind: PluginKind, inputs: ShapeInputs, asCausalLM = false): SpecNode => {
    const d = registry.get(ref.use, kind, at(`${path}.use`));
    let rules: Pick<PluginDescriptor<any>, 'resolve' | 'shape'> = d;
    let schemaOf: PluginDescriptor<any> = d;
    if (asCausalLM) {
      const facet = d.causalLM;
      if (!facet) throw configError(at(`${path}.use`), `'${d.id}' is an LLMBackbone without a causal-LM form, so it cannot generate reports`, 'families made with llmBackboneDescriptor have one');
      let pseudo = facetDescriptors.get(facet);
      if (!pseudo) { pseudo = { ...d, options: facet.options }; facetDescriptors.set(facet, pseudo); }
      schemaOf = pseudo;
      rules = { resolve: facet.resolve as PluginDescriptor<any>['resolve'], shape: facet.shape as PluginDescriptor<any>['shape'] };
    }
    let options = pluginOptions(schemaOf, ref.with, at(`${path}.with`));
    let output: Shape | undefined;
    try {
      if (rules.resolve) options = rules.resolve(options, ctx);
      // the LLM's own rule runs below, once the projector's tokens are known to fit it
      output = asCausalLM ? undefined : rules.shape?.(inputs, options, ctx);
    } catch (e) {
      throw wrap(e, d, path);
    }
    return { path, id: d.id, kind: d.kind, options, python: d.python, inputs, output, name: ref.name };
  };

  const tokensOf = (node: SpecNode): TokenShape => {
    if (node.output?.type !== 'tokens') throw shapeError(at(node.path), `'${node.id}' gives ${describe(node.output)}, but tokens are needed after it`);
    return node.output;
  };

  const encoder = build(cfg.model.encoder, 'model.encoder', 'Encoder', { image });
  const visual = tokensOf(encoder);
  producers.tokens = `model.encoder (${encoder.id}: ${describe(visual)})`;

  const projector = build(cfg.model.projector, 'model.projector', 'Adapter', { tokens: visual });
  const projected = tokensOf(projector);
  producers.tokens = `model.projector (${projector.id}: ${describe(projected)})`;

  // The LLM is resolved first without inputs, so a width mismatch can be blamed on the projector (the part a
  // user sizes to the LLM), naming both numbers and where the hidden size comes from.
  const llm = build(cfg.model.llm, 'model.llm', 'LLMBackbone', {}, true) as SpecNode;
  const hidden = Number(llm.options.hiddenSize);
  if (projected.width !== hidden) {
    const source = llm.options.checkpointFound ? `checkpoint ${String(llm.options.checkpoint)}` : 'model.llm.with.hiddenSize (checkpoint not found; verified against its config.json once it is there)';
    const option = projector.options.outWidth !== undefined ? 'model.projector.with.outWidth' : 'model.projector';
    throw shapeError(at(option), `the projector gives tokens ${projected.width} wide, but the LLM (model.llm, ${llm.id}) has hidden size ${hidden} (from ${source}); they must be equal`,
      `set model.projector.with.outWidth to ${hidden}`);
  }
  llm.inputs = { tokens: projected };
  try {
    llm.output = registry.get(llm.id).causalLM!.shape({ tokens: projected }, llm.options as never);
  } catch (e) {
    throw wrap(e, registry.get(llm.id), 'model.llm');
  }

  const losses = cfg.loss.map((ref, i) => ({ ...build(ref, `loss[${i}]`, 'Loss', {}), weight: ref.weight }));

  return {
    version: REPORT_SPEC_VERSION,
    task: 'report',
    experiment: cfg.name,
    configFile,
    input: image,
    encoder: encoder as ReportModelSpec['encoder'],
    projector: projector as ReportModelSpec['projector'],
    llm: llm as ReportModelSpec['llm'],
    losses,
  };
}

/** One line per node, as `llmed config check` prints it. */
export function describeReportSpec(spec: ReportModelSpec): string[] {
  const line = (n: SpecNode) => `${n.path.padEnd(20)} ${n.id.padEnd(18)} → ${describe(n.output)}`;
  return [
    `${'model.input'.padEnd(20)} ${''.padEnd(18)} → ${describe(spec.input)}`,
    line(spec.encoder), line(spec.projector),
    `${line(spec.llm)} as a causal LM${spec.llm.options.lora ? ` + LoRA r ${(spec.llm.options.lora as { rank: number }).rank}` : ''}`,
    ...spec.losses.map((l) => `${l.path.padEnd(20)} ${l.id.padEnd(18)} weight ${l.weight}`),
  ];
}
