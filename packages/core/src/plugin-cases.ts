/**
 * Per-plugin test cases: `plugins/<id>/tests/cases.json`, one file of options, inputs and expected outputs
 * that the TypeScript and the Python walkers both read (the Python decoder is `llmed.plugin_cases`, with the
 * same rules). A plugin is tested in both languages by adding cases, without a test file of its own.
 *
 *   { "cases": [ { "name", "options": {partial, defaults from the schema}, "inputs": { name: VALUE },
 *                  "expected": { name: VALUE | number | {"shape": [..]} }, "tolerance": abs (1e-6) } ] }
 *
 * A VALUE is a tensor, flat in C order in the torch/numpy layout (a volume (K, J, I), a field (3, K, J, I),
 * a batch (N, C, K, J, I)):
 *   {"shape", "data": [..]}                               the values themselves;
 *   {"shape", "sine": {"seed": s, "scale": a, "offset": b}}  value[i] = b + a·sin(1.7·i + s), in float64, then stored;
 *   {"shape", "boxes": [{"label", "lo": [..], "hi": [..]}]}  zeros with half-open boxes [lo, hi) (in shape order)
 *                                                          filled with their label, later boxes over earlier ones.
 * "dtype" ("float32", "float64", "int32", "uint8") says how it is stored: float32 unless given, except boxes,
 * which are label maps and default to int32. Any other JSON (numbers, strings, lists, {"shape"} alone as an
 * expected output shape) passes through unchanged.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LlmedError } from './errors.ts';

export type CaseDtype = 'float32' | 'float64' | 'int32' | 'uint8';
export type CaseArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** A decoded tensor VALUE: its shape and its values, flat in C order. */
export interface CaseTensor { shape: number[]; data: CaseArray; dtype: CaseDtype }

export interface PluginCase {
  name: string;
  options: Record<string, unknown>;
  /** Inputs as written in the file (decode each with `caseValue`). */
  inputs: Record<string, unknown>;
  expected: Record<string, unknown>;
  /** Largest absolute difference accepted between an output and its expected value. */
  tolerance: number;
}

export const DEFAULT_CASE_TOLERANCE = 1e-6;

const ARRAYS: Record<CaseDtype, new (n: number) => CaseArray> = { float32: Float32Array, float64: Float64Array, int32: Int32Array, uint8: Uint8Array };

function caseError(where: string, message: string): LlmedError {
  return new LlmedError('plugin', message, { where, hint: 'the format is described in packages/core/src/plugin-cases.ts' });
}

export function isCaseTensor(v: unknown): v is CaseTensor {
  return typeof v === 'object' && v !== null && Array.isArray((v as CaseTensor).shape) && ArrayBuffer.isView((v as CaseTensor).data);
}

/** Decodes one VALUE into a `CaseTensor`; anything that is not a tensor VALUE comes back unchanged. */
export function caseValue(value: unknown, where = 'case value'): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const v = value as { shape?: unknown; data?: unknown; sine?: unknown; boxes?: unknown; dtype?: unknown };
  const encodings = (['data', 'sine', 'boxes'] as const).filter((k) => v[k] !== undefined);
  if (!Array.isArray(v.shape) || encodings.length === 0) return value; // plain JSON, or an expected {"shape"}
  if (encodings.length > 1) throw caseError(where, `a value gives ${encodings.join(' and ')}; give one of data, sine, boxes`);
  const shape = v.shape as unknown[];
  if (!shape.every((s) => Number.isInteger(s) && (s as number) >= 0)) throw caseError(where, `shape must be non-negative integers, got ${JSON.stringify(v.shape)}`);
  const dims = shape as number[];
  const dtype = (v.dtype ?? (v.boxes !== undefined ? 'int32' : 'float32')) as CaseDtype;
  if (!(dtype in ARRAYS)) throw caseError(where, `dtype ${JSON.stringify(v.dtype)} is not one of ${Object.keys(ARRAYS).join(', ')}`);
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new ARRAYS[dtype](n);
  if (v.data !== undefined) {
    if (!Array.isArray(v.data) || v.data.length !== n || !v.data.every((x) => typeof x === 'number')) {
      throw caseError(where, `data must be ${n} numbers for shape [${dims.join(', ')}], got ${Array.isArray(v.data) ? `${v.data.length} items` : typeof v.data}`);
    }
    data.set(v.data as number[]);
  } else if (v.sine !== undefined) {
    const s = v.sine as { seed?: unknown; scale?: unknown; offset?: unknown };
    const num = (x: unknown, name: string, fallback: number) => {
      if (x === undefined) return fallback;
      if (typeof x !== 'number') throw caseError(where, `sine.${name} must be a number`);
      return x;
    };
    const seed = num(s.seed, 'seed', 0), scale = num(s.scale, 'scale', 1), offset = num(s.offset, 'offset', 0);
    // Computed in float64 and rounded once on storing, so both languages get the same bits.
    for (let i = 0; i < n; i++) data[i] = offset + scale * Math.sin(1.7 * i + seed);
  } else {
    if (!Array.isArray(v.boxes)) throw caseError(where, 'boxes must be a list of {label, lo, hi}');
    const strides = dims.map((_, a) => dims.slice(a + 1).reduce((x, y) => x * y, 1));
    (v.boxes as unknown[]).forEach((b, t) => {
      const box = b as { label?: unknown; lo?: unknown; hi?: unknown };
      const ok = (p: unknown): p is number[] => Array.isArray(p) && p.length === dims.length && p.every((x) => Number.isInteger(x));
      if (typeof box.label !== 'number' || !ok(box.lo) || !ok(box.hi)) throw caseError(where, `boxes[${t}] needs a numeric label and integer lo, hi of ${dims.length} entries (shape order)`);
      const lo = box.lo.map((x, a) => Math.max(0, Math.min(x, dims[a])));
      const hi = box.hi.map((x, a) => Math.max(lo[a], Math.min(x, dims[a])));
      if (hi.some((h, a) => h <= lo[a])) return; // an empty box fills nothing
      const index = [...lo];
      for (;;) {
        let q = 0;
        for (let a = 0; a < dims.length; a++) q += index[a] * strides[a];
        data[q] = box.label;
        let a = dims.length - 1;
        while (a >= 0 && ++index[a] === hi[a]) { index[a] = lo[a]; a--; }
        if (a < 0) break;
      }
    });
  }
  return { shape: dims, data, dtype } satisfies CaseTensor;
}

/** The cases of the plugin in `pluginDir` (`tests/cases.json`); an empty list when it has none. */
export function readPluginCases(pluginDir: string): PluginCase[] {
  const file = join(pluginDir, 'tests', 'cases.json');
  if (!existsSync(file)) return [];
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw caseError(file, `not valid JSON: ${(e as Error).message}`);
  }
  const cases = (doc as { cases?: unknown })?.cases;
  if (!Array.isArray(cases)) throw caseError(file, 'needs {"cases": [...]}');
  return cases.map((c, t) => {
    const at = `${file} cases[${t}]`;
    const obj = (x: unknown, name: string): Record<string, unknown> => {
      if (x === undefined) return {};
      if (typeof x !== 'object' || x === null || Array.isArray(x)) throw caseError(at, `${name} must be an object`);
      return x as Record<string, unknown>;
    };
    const k = c as Partial<PluginCase>;
    if (typeof k?.name !== 'string' || !k.name) throw caseError(at, 'every case needs a name');
    if (k.tolerance !== undefined && !(typeof k.tolerance === 'number' && k.tolerance >= 0)) throw caseError(at, 'tolerance must be a non-negative number');
    return { name: k.name, options: obj(k.options, 'options'), inputs: obj(k.inputs, 'inputs'), expected: obj(k.expected, 'expected'), tolerance: k.tolerance ?? DEFAULT_CASE_TOLERANCE };
  });
}
