/**
 * The per-plugin cases (`plugins/<id>/tests/cases.json`, packages/core/src/plugin-cases.ts): the decoder's
 * rules, then the TypeScript walk — every registered Metric with cases runs each of them and must give the
 * expected numbers, which the plugin's Python reference gave too (bridge/python/tests walks the same files).
 * A new Metric is tested here by adding a cases file to its folder, with no test file of its own.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { caseValue, isCaseTensor, loadRegistry, loadWorkspace, pluginOptions, readPluginCases, type CaseTensor, type LlmedError, type PluginDescriptor } from '@llmed/core';
import { metricInputFromCase, type MetricResult, type MetricRuntime } from '@llmed/imaging';
import { repoRoot, tempDir } from '../helpers/workspace.ts';

describe('caseValue', () => {
  it('decodes literal data, in float32 unless told', () => {
    const v = caseValue({ shape: [2, 2], data: [0.1, 2, 3, 4] }) as CaseTensor;
    expect(v.shape).toEqual([2, 2]);
    expect(v.data).toBeInstanceOf(Float32Array);
    expect(v.data[0]).toBe(Math.fround(0.1));
    expect((caseValue({ shape: [3], data: [1, 2, 3], dtype: 'float64' }) as CaseTensor).data).toBeInstanceOf(Float64Array);
  });

  it('sine: offset + scale·sin(1.7·i + seed) in float64, stored once', () => {
    const v = caseValue({ shape: [2, 3], sine: { seed: 0.5, scale: 2, offset: -1 } }) as CaseTensor;
    expect([...v.data]).toEqual([0, 1, 2, 3, 4, 5].map((i) => Math.fround(-1 + 2 * Math.sin(1.7 * i + 0.5))));
  });

  it('boxes: int32 zeros with half-open boxes in shape order, later boxes over earlier ones', () => {
    const v = caseValue({ shape: [2, 3, 4], boxes: [{ label: 1, lo: [0, 0, 0], hi: [2, 2, 2] }, { label: 5, lo: [1, 1, 1], hi: [2, 3, 9] }] }) as CaseTensor;
    expect(v.data).toBeInstanceOf(Int32Array);
    const at = (k: number, j: number, i: number) => v.data[(k * 3 + j) * 4 + i];
    expect(at(0, 0, 0)).toBe(1);
    expect(at(0, 1, 1)).toBe(1);
    expect(at(1, 1, 1)).toBe(5); // the later box wins
    expect(at(1, 2, 3)).toBe(5); // hi past the end is clipped to the shape
    expect(at(0, 2, 0)).toBe(0);
    expect(at(1, 0, 2)).toBe(0); // hi is exclusive
    expect([...v.data].filter((x) => x === 1).length).toBe(8 - 1);
  });

  it('passes other JSON through: numbers, strings, lists, an expected {"shape"}', () => {
    for (const x of [3, 'llama3', [1, 2], { shape: [1, 4] }, { labels: [1] }]) expect(caseValue(x)).toEqual(x);
    expect(isCaseTensor(caseValue({ shape: [1, 4] }))).toBe(false);
  });

  it('refuses a value it cannot decode, saying why', () => {
    const message = (v: unknown) => { try { caseValue(v, 'inputs.x'); } catch (e) { return (e as LlmedError).format(); } return ''; };
    expect(message({ shape: [2], data: [1] })).toMatch(/inputs\.x: data must be 2 numbers for shape \[2\], got 1 items/);
    expect(message({ shape: [2], data: [1, 2], sine: {} })).toMatch(/gives data and sine/);
    expect(message({ shape: [2], data: [1, 2], dtype: 'float16' })).toMatch(/dtype "float16" is not one of/);
    expect(message({ shape: [2, 2], boxes: [{ label: 1, lo: [0], hi: [1] }] })).toMatch(/boxes\[0\] needs .* 2 entries/);
  });
});

describe('readPluginCases', () => {
  const tmp = tempDir('llmed-cases-');
  afterAll(() => tmp.cleanup());

  it('fills options, inputs, expected and the tolerance; a plugin without a cases file has none', () => {
    mkdirSync(join(tmp.dir, 'p', 'tests'), { recursive: true });
    writeFileSync(join(tmp.dir, 'p', 'tests', 'cases.json'), JSON.stringify({ cases: [{ name: 'a', expected: { value: 1 } }, { name: 'b', options: { x: 1 }, tolerance: 0.5 }] }));
    expect(readPluginCases(join(tmp.dir, 'p'))).toEqual([
      { name: 'a', options: {}, inputs: {}, expected: { value: 1 }, tolerance: 1e-6 },
      { name: 'b', options: { x: 1 }, inputs: {}, expected: {}, tolerance: 0.5 },
    ]);
    expect(readPluginCases(join(tmp.dir, 'none'))).toEqual([]);
  });

  it('names the file and the case at fault', () => {
    writeFileSync(join(tmp.dir, 'p', 'tests', 'cases.json'), JSON.stringify({ cases: [{ name: 'a' }, { options: {} }] }));
    expect(() => readPluginCases(join(tmp.dir, 'p'))).toThrow(/every case needs a name/);
    let where = '';
    try { readPluginCases(join(tmp.dir, 'p')); } catch (e) { where = (e as LlmedError).where ?? ''; }
    expect(where).toMatch(/p[\\/]tests[\\/]cases\.json cases\[1\]$/);
    writeFileSync(join(tmp.dir, 'p', 'tests', 'cases.json'), '{ "cases": [');
    expect(() => readPluginCases(join(tmp.dir, 'p'))).toThrow(/not valid JSON/);
  });
});

// --------------------------------------------------------------------------------------------------------
// The walk over the registered Metric plugins.

const ws = loadWorkspace(repoRoot);
const registry = await loadRegistry(ws);

/** The folder of a registered plugin, when it was loaded from a folder (first-party ones are). */
function pluginDir(d: PluginDescriptor<any>): string | undefined {
  const source = registry.sourceOf(d.id);
  const dir = source ? resolve(ws.root, source) : undefined;
  return dir && existsSync(join(dir, 'package.json')) ? dir : undefined;
}

/** A metric's result as the flat name → number map a case's `expected` (and the Python reference) uses. */
function metricOutputs(r: MetricResult): Record<string, number> {
  return { value: r.value, ...Object.fromEntries(Object.entries(r.perLabel ?? {}).map(([l, v]) => [`perLabel.${l}`, v])) };
}

const metrics = registry.list('Metric').map((d) => ({ d, dir: pluginDir(d) }));
const withCases = metrics.filter((m) => m.dir && readPluginCases(m.dir).length > 0);

describe('Metric plugin cases', () => {
  it('every first-party Metric has cases', () => {
    const firstParty = metrics.filter((m) => m.dir?.startsWith(join(repoRoot, 'plugins')));
    expect(firstParty.length).toBeGreaterThanOrEqual(8);
    expect(firstParty.filter((m) => !withCases.includes(m)).map((m) => m.d.id)).toEqual([]);
  });

  describe.each(withCases.map((m) => [m.d.id, m] as const))('%s', (id, { d, dir }) => {
    it.each(readPluginCases(dir!).map((c) => [c.name, c] as const))('%s', (_name, c) => {
      const options = pluginOptions(d, c.options, `${dir}/tests/cases.json ${c.name}.options`);
      const out = metricOutputs((d.runtime as MetricRuntime).compute(metricInputFromCase(c.inputs, `${id} case ${c.name}`), options));
      expect(Object.keys(c.expected).length, 'a case must expect something').toBeGreaterThan(0);
      for (const [name, want] of Object.entries(c.expected)) {
        expect(typeof want, `${name}: a metric's outputs are numbers`).toBe('number');
        expect(out[name], `${name} (outputs: ${Object.keys(out).join(', ')})`).toBeDefined();
        expect(Math.abs(out[name] - (want as number)), `${name}: got ${out[name]}, expected ${want}`).toBeLessThanOrEqual(c.tolerance);
      }
    });
  });
});
