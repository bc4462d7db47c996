/**
 * Per-plugin test cases, `plugins/<id>/tests/cases.json` (format in /work/helpers/common.md; the Python
 * decoder is `llmed.plugin_cases`). Minimal version written for the text metrics, whose inputs are strings
 * and pass through; the full decoder (sine and box tensors) comes with the registration metrics' helper.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LlmedError } from './errors.ts';

export interface PluginCase {
  name: string;
  options: Record<string, unknown>;
  inputs: Record<string, unknown>;
  expected: Record<string, unknown>;
  tolerance: number;
}

export const DEFAULT_CASE_TOLERANCE = 1e-6;

/** A literal tensor {"shape", "data"} becomes {shape, data: Float32Array}; anything else passes through. */
export function caseValue(value: unknown, where = 'case value'): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const v = value as { shape?: unknown; data?: unknown };
  if (!Array.isArray(v.shape) || v.data === undefined) return value;
  const n = (v.shape as number[]).reduce((a, b) => a * b, 1);
  if (!Array.isArray(v.data) || v.data.length !== n) throw new LlmedError('plugin', `data must be ${n} numbers for shape [${v.shape.join(', ')}]`, { where });
  return { shape: v.shape, data: Float32Array.from(v.data as number[]) };
}

export function readPluginCases(pluginDir: string): PluginCase[] {
  const file = join(pluginDir, 'tests', 'cases.json');
  if (!existsSync(file)) return [];
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new LlmedError('plugin', `not valid JSON: ${(e as Error).message}`, { where: file });
  }
  const cases = (doc as { cases?: unknown })?.cases;
  if (!Array.isArray(cases)) throw new LlmedError('plugin', 'needs {"cases": [...]}', { where: file });
  return cases.map((c, t) => {
    const k = c as Partial<PluginCase>;
    if (typeof k?.name !== 'string' || !k.name) throw new LlmedError('plugin', 'every case needs a name', { where: `${file} cases[${t}]` });
    return { name: k.name, options: k.options ?? {}, inputs: k.inputs ?? {}, expected: k.expected ?? {}, tolerance: k.tolerance ?? DEFAULT_CASE_TOLERANCE };
  });
}
