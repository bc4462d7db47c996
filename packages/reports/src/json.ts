/**
 * Reading dataset files so that any problem is one `LlmedError('data', …)` naming the file and the place
 * inside it: a JSON path (`$.training[3].labels.report.findings.chest`) or, for CSV, `row N, column "X"`.
 * Loaders never throw a bare TypeError on a malformed file: they walk the value with these accessors.
 */
import { readFileSync } from 'node:fs';
import { LlmedError } from '@llmed/core/errors';

/** A data error located at `file` + `path`, e.g. `data/x.json $.training[0].image`. */
export function dataAt(file: string, path: string, message: string, hint?: string): LlmedError {
  return new LlmedError('data', message, { where: path ? `${file} ${path}` : file, hint });
}

/** Read and parse a JSON file; a missing file or a syntax error names the file (and the position). */
export function readJsonFile(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw dataAt(file, '', `cannot read the ${what}: ${code}`, code === 'ENOENT' ? `put the ${what} at ${file} (see docs/report-datasets.md)` : undefined);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw dataAt(file, '$', `the ${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Path-aware accessors over parsed JSON. */
export class JsonReader {
  constructor(readonly file: string) {}

  fail(path: string, message: string, hint?: string): LlmedError {
    return dataAt(this.file, path, message, hint);
  }

  object(v: unknown, path: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw this.fail(path, `expected an object, found ${describe(v)}`);
    return v as Record<string, unknown>;
  }

  array(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) throw this.fail(path, `expected an array, found ${describe(v)}`);
    return v;
  }

  string(v: unknown, path: string, opts: { nonEmpty?: boolean } = {}): string {
    if (typeof v !== 'string') throw this.fail(path, `expected a string, found ${describe(v)}`);
    if (opts.nonEmpty && v.trim() === '') throw this.fail(path, 'is an empty string');
    return v;
  }

  /** A string, or '' for a missing / null value (AMOS-MM leaves regions without findings out or null). */
  optionalString(v: unknown, path: string): string {
    if (v === undefined || v === null) return '';
    return this.string(v, path);
  }

  number(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.fail(path, `expected a finite number, found ${describe(v)}`);
    return v;
  }
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

/** `$.a.b[3]` style path building; keys that are not identifiers are quoted. */
export function jp(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;
}
