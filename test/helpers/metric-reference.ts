/**
 * Running a Metric plugin's Python reference (`reference(options, inputs)` in its python/ folder) on arrays
 * from a TypeScript test, through bridge/python/llmed/metrics_ref.py: the arrays go as raw files, all the
 * requests of a call go to one interpreter (importing scipy costs about a second).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pluginOptions, type PluginDescriptor, type PythonEntry } from '@llmed/core';
import { repoRoot } from './workspace.ts';

export const VENV_PYTHON = join(repoRoot, '.venv/bin/python');
export const REF_SCRIPT = join(repoRoot, 'bridge/python/llmed/metrics_ref.py');

function pythonHas(modules: string): boolean {
  if (!existsSync(VENV_PYTHON)) return false;
  try {
    execFileSync(VENV_PYTHON, ['-c', `import ${modules}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The venv has numpy and scipy (and nibabel, which the imaging cross-checks need too). */
export const hasPython = pythonHas('nibabel, numpy, scipy');
if (!hasPython) console.warn(`[metric tests] ${VENV_PYTHON} with numpy/scipy not found: the Python reference cross-checks are SKIPPED`);

/** Inputs of a metric reference: the arrays of a `MetricInput` (dims [nx, ny, nz]) and any JSON. */
export interface ReferenceInputs {
  dims: readonly number[];
  fixedLabels?: Int32Array; warpedLabels?: Int32Array; movingLabels?: Int32Array;
  field?: Float32Array; groundTruthField?: Float32Array; det?: Float32Array;
  spacing?: readonly number[]; labels?: readonly number[];
}

/**
 * One call: a plugin's reference (`plugin`, with `factory` to pick another function of its module) with its
 * options filled in from the descriptor's schema as the TypeScript metric gets them, or a function of
 * llmed.metrics_ref itself (`python`).
 */
export interface ReferenceRequest {
  plugin?: PluginDescriptor<any>; factory?: string; python?: Partial<PythonEntry>;
  options?: Record<string, unknown>; inputs: ReferenceInputs; kwargs?: Record<string, unknown>;
}

/** A reference's answer: its outputs (`value`, `perLabel.<l>`; NaN comes back as null) and its `seconds`. */
export type ReferenceAnswer = Record<string, number | null>;

function entryOf(r: ReferenceRequest): Partial<PythonEntry> {
  if (!r.plugin) return r.python ?? {};
  if (!r.plugin.python) throw new Error(`${r.plugin.id} has no python reference`);
  return { ...r.plugin.python, ...(r.factory ? { factory: r.factory } : {}) };
}

export class MetricReference {
  private readonly dir = mkdtempSync(join(tmpdir(), 'llmed-metric-ref-'));
  private files = 0;

  private raw(data: Int32Array | Float32Array, shape: number[]): { raw: string; dtype: string; shape: number[] } {
    const file = join(this.dir, `a${this.files++}.raw`);
    writeFileSync(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return { raw: file, dtype: data instanceof Int32Array ? 'int32' : 'float32', shape };
  }

  private encode(inputs: ReferenceInputs): Record<string, unknown> {
    const [nx, ny, nz] = inputs.dims;
    const out: Record<string, unknown> = {};
    for (const [name, v] of Object.entries(inputs)) {
      if (name === 'dims' || v === undefined) continue;
      if (v instanceof Int32Array) out[name] = this.raw(v, [nz, ny, nx]);
      else if (v instanceof Float32Array) out[name] = this.raw(v, v.length === 3 * nx * ny * nz ? [3, nz, ny, nx] : [nz, ny, nx]);
      else out[name] = v;
    }
    return out;
  }

  /** Runs the requests in one Python process; one answer per request, in order. */
  run(requests: ReferenceRequest[]): ReferenceAnswer[] {
    const req = join(this.dir, `req${this.files++}.json`);
    writeFileSync(req, JSON.stringify(requests.map((r) => ({
      python: entryOf(r), options: r.plugin ? pluginOptions(r.plugin, r.options ?? {}, `${r.plugin.id} reference`) : r.options ?? {}, kwargs: r.kwargs ?? {}, inputs: this.encode(r.inputs),
    }))));
    const out = execFileSync(VENV_PYTHON, [REF_SCRIPT, req], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    return JSON.parse(out.trim().split('\n').pop()!) as ReferenceAnswer[];
  }

  cleanup(): void { rmSync(this.dir, { recursive: true, force: true }); }
}

/** The per-label part of an answer, keyed by label as `LabelScores.perLabel` is. */
export function answerPerLabel(a: ReferenceAnswer): Record<string, number | null> {
  return Object.fromEntries(Object.entries(a).filter(([k]) => k.startsWith('perLabel.')).map(([k, v]) => [k.slice('perLabel.'.length), v]));
}
