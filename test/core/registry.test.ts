/**
 * The registry walk (timm style): every plugin registered in the workspace is exercised from its own
 * descriptor — options default-filled and validated, shape rule run on its example, the inversify binding
 * resolved by id, a Metric run on its example values (label maps and fields, or texts for a text Metric)
 * — so a new plugin is tested without writing a new test file. The Python side walks the same list
 * (`llmed plugins list --json`) and runs a forward pass of each torch module.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { didYouMean, isTextMetricRuntime, type LlmedError, loadRegistry, resolveExperiment, loadWorkspace, PLUGIN, pluginKey, pluginOptions, PLUGIN_KINDS, type PluginDescriptor } from '@llmed/core';
import { metricInputFromCase, type MetricRuntime } from '@llmed/imaging';
import { caseTextInput } from '@llmed/text';
import { repoRoot } from '../helpers/workspace.ts';

const ws = loadWorkspace(repoRoot);
const registry = await loadRegistry(ws);
const all = registry.list();

describe('plugin registry', () => {
  it('loads every first-party plugin folder listed through workspace.json', () => {
    const ids = all.map((d) => d.id);
    for (const id of ['dual-pyramid', 'tokens', 'adapter0', 'inner-mlp', 'stage', 'llama2', 'llama3', 'phi3', 'qwen2', 'vit', 'multiscale', 'cascade', 'mse', 'ncc', 'dice-loss', 'diffusion']) {
      expect(ids).toContain(id);
    }
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('binds each descriptor in the inversify container under its id and in the multi-binding', () => {
    const multi = registry.container.getAll<PluginDescriptor>(PLUGIN);
    expect(multi.length).toBe(all.length);
    for (const d of all) expect(registry.container.get(pluginKey(d.id))).toBe(d);
  });
});

describe('mistyped names: did you mean', () => {
  const message = (f: () => unknown) => { try { f(); } catch (e) { return (e as LlmedError).message; } return ''; };
  it('suggests the closest plugin of the kind needed, and nothing from another kind', () => {
    expect(message(() => registry.get('lama3', 'LLMBackbone'))).toMatch(/unknown plugin 'lama3' \(kind LLMBackbone\) — did you mean 'llama3'\?/);
    expect(message(() => registry.get('qwen', 'LLMBackbone'))).toMatch(/did you mean 'qwen2'\?/);
    // 'dicee' is one edit from the Metric 'dice', but an LLM backbone is needed here
    expect(message(() => registry.get('dicee', 'LLMBackbone'))).not.toMatch(/did you mean/);
    expect(message(() => registry.get('dicee', 'Metric'))).toMatch(/did you mean 'dice'\?/);
  });
  it('suggests the closest experiment', () => {
    expect(message(() => resolveExperiment(ws, 'abdomen-mcrt'))).toMatch(/did you mean 'abdomen-mrct'\?/);
    expect(message(() => resolveExperiment(ws, 'zzzzzz'))).not.toMatch(/did you mean/);
    expect(didYouMean('knie', ['knee', 'demo'])).toBe(" — did you mean 'knee'?");
  });
});

describe.each(all.map((d) => [d.id, d] as const))('plugin %s', (_id, d) => {
  it('has a valid descriptor', () => {
    expect(PLUGIN_KINDS).toContain(d.kind);
    expect(d.summary.length).toBeGreaterThan(10);
    expect(d.options.type).toBe('object');
    if (d.python) {
      expect(existsSync(d.python.root), `${d.python.root} exists`).toBe(true);
      expect(existsSync(`${d.python.root}/${d.python.module}`) || existsSync(`${d.python.root}/${d.python.module}.py`), `python module ${d.python.module} exists`).toBe(true);
    }
  });

  it('accepts its example options and fills defaults', () => {
    const opts = pluginOptions(d, d.example.options, `${d.id}.example`);
    for (const [key, schema] of Object.entries((d.options.properties ?? {}) as Record<string, { default?: unknown }>)) {
      if (schema.default !== undefined && (d.example.options as Record<string, unknown>)[key] === undefined) expect(opts[key]).toEqual(schema.default);
    }
  });

  it('rejects an unknown option, naming it', () => {
    let text = '';
    try { pluginOptions(d, { ...d.example.options, notAnOption: 1 }, 'model.x.with'); } catch (e) { text = (e as LlmedError).format(); }
    expect(text).toMatch(/model\.x\.with\.notAnOption: is not a known setting/);
  });

  it.runIf(d.kind === 'Metric')('runs on its example inputs and gives a finite number', async ({ skip }) => {
    const options = pluginOptions(d, d.example.options, `${d.id}.example`);
    // a resource outside npm and pip (METEOR's WordNet): the descriptor says what to install
    const why = d.missing?.(options, { workspaceRoot: repoRoot });
    if (why) return skip(why);
    let r: { value: number; unit: string; higherIsBetter: boolean };
    if (isTextMetricRuntime(d.runtime)) {
      // a text Metric's example inputs are texts (candidates, references, VQA choices), as in its cases
      const input = caseTextInput({ name: `${d.id}.example`, options: d.example.options, inputs: d.example.inputs, expected: {}, tolerance: 0 });
      const t = await d.runtime.computeText(input, options, { workspaceRoot: repoRoot });
      expect(t.perSample.length).toBe(input.samples.length);
      if (t.skipped) {
        // its model is not on this machine (the MiniLM export, a GREEN judge): the runtime says so, names
        // where it looked and scores nothing
        expect(t.skipped).toMatch(/\//);
        expect(t.value).toBeNaN();
        return skip(`${d.id}: ${t.skipped}`);
      }
      r = t;
    } else {
      // a registration Metric's example inputs are values (label maps, fields) in the plugin-cases encoding
      r = (d.runtime as MetricRuntime).compute(metricInputFromCase(d.example.inputs, `${d.id}.example.inputs`), options);
    }
    expect(Number.isFinite(r.value), `${d.id} gave ${r.value}`).toBe(true);
    expect(typeof r.unit).toBe('string');
    expect(typeof r.higherIsBetter).toBe('boolean');
  });

  it.skipIf(!d.shape)('maps its example inputs to an output shape', () => {
    const opts = pluginOptions(d, d.example.options, d.id);
    const out = d.shape!(d.example.inputs, opts, { workspaceRoot: repoRoot });
    expect(out.type).toMatch(/^(pyramid|tokens|stages|fields)$/);
    // report-generation encoders (vit3d, i3resnet152) give visual tokens
    const expected = { Encoder: ['pyramid', 'tokens'], Adapter: ['tokens', 'stages'], LLMBackbone: ['tokens'], Decoder: ['fields'] }[d.kind as 'Encoder'];
    expect(expected).toContain(out.type);
  });
});
