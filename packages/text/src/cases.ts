/**
 * Running a text Metric plugin on its `tests/cases.json`: a case's inputs are
 * `{ "candidates": [str], "references": [str | [str]], "choices"?: [[str]] }` and its expected values name
 * the metric's outputs (`"bleu-4"`, `"chance"`, ...), `"value"` or a per-sample score `"sample-<i>"`; the Python reference of the plugin
 * (`plugins/<id>/python/<module>`) returns the same names, so both languages check the same numbers.
 */
import { pluginOptions, type PluginCase, type PluginDescriptor, type TextMetricContext, type TextMetricResult } from '@llmed/core';
import { isTextMetricRuntime } from '@llmed/core';
import { textInput } from './samples.ts';

export function caseTextInput(c: PluginCase) {
  const i = c.inputs as { candidates?: string[]; references?: (string | string[])[]; choices?: string[][] };
  if (!Array.isArray(i.candidates) || !Array.isArray(i.references)) throw new TypeError(`case ${c.name}: inputs need candidates and references`);
  return textInput(i.candidates, i.references, i.choices);
}

export async function runTextCase(d: PluginDescriptor<any>, c: PluginCase, ctx?: TextMetricContext): Promise<{ result: TextMetricResult; options: Record<string, unknown> }> {
  if (!isTextMetricRuntime(d.runtime)) throw new TypeError(`${d.id} has no text runtime`);
  const options = pluginOptions(d, c.options, `${d.id} case ${c.name}`);
  const result = await d.runtime.computeText(caseTextInput(c), options, ctx);
  return { result, options };
}

/** The outputs of a result by name: its outputs, `value`, its counts, and `sample-<i>` per sample. */
export function resultOutputs(r: TextMetricResult): Record<string, number> {
  return { ...Object.fromEntries(r.perSample.map((v, i) => [`sample-${i}`, v])), ...r.outputs, value: r.value, ...(r.counts ?? {}) };
}

/** Mismatches between a result and a case's expected numbers (empty when all are within tolerance). */
export function caseMismatches(r: TextMetricResult, c: PluginCase): string[] {
  const got = resultOutputs(r);
  const out: string[] = [];
  for (const [k, want] of Object.entries(c.expected)) {
    if (typeof want !== 'number') continue;
    const v = got[k];
    if (v === undefined) out.push(`${k}: missing (outputs: ${Object.keys(got).join(', ')})`);
    else if (!(Math.abs(v - want) <= c.tolerance)) out.push(`${k}: got ${v}, expected ${want} (tolerance ${c.tolerance})`);
  }
  return out;
}
