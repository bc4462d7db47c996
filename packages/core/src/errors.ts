/**
 * Typed errors. Every failure a user can cause (a bad config, a broken NIfTI file, a composition whose
 * shapes do not fit, a missing checkpoint, a bridge failure) is one of these. The CLI prints
 * `error[<kind>] <where>: <message>` plus the hint, exits non-zero, and shows the stack only with --debug.
 */
export type ErrorKind = 'config' | 'nifti' | 'shape' | 'bridge' | 'checkpoint' | 'data' | 'plugin' | 'usage' | 'not-built' | 'busy' | 'cancelled';

export class LlmedError extends Error {
  readonly kind: ErrorKind;
  /** The file or config path the problem is in (`configs/knee/config.json`, `model.block[1].with.out`). */
  readonly where?: string;
  /** What the user can do about it. */
  readonly hint?: string;
  /** Process exit code the CLI uses for this error. */
  readonly exitCode: number;

  constructor(kind: ErrorKind, message: string, opts: { where?: string; hint?: string; cause?: unknown; exitCode?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'LlmedError';
    this.kind = kind;
    this.where = opts.where;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? (kind === 'usage' ? 2 : 1);
  }

  /** One line for the terminal: `error[nifti] /data/x.nii.gz: file is truncated (...)`. */
  format(): string {
    const where = this.where ? ` ${this.where}:` : '';
    const hint = this.hint ? `\n  hint: ${this.hint}` : '';
    return `error[${this.kind}]${where} ${this.message}${hint}`;
  }
}

export const configError = (where: string, message: string, hint?: string) => new LlmedError('config', message, { where, hint });
export const niftiError = (file: string, message: string, hint?: string) => new LlmedError('nifti', message, { where: file, hint });
export const shapeError = (where: string, message: string, hint?: string) => new LlmedError('shape', message, { where, hint });
export const dataError = (where: string, message: string, hint?: string) => new LlmedError('data', message, { where, hint });
export const pluginError = (where: string, message: string, hint?: string) => new LlmedError('plugin', message, { where, hint });

export function isLlmedError(e: unknown): e is LlmedError {
  return e instanceof LlmedError || (typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'LlmedError');
}

/**
 * " — did you mean 'x'?" for a mistyped name: the closest candidate by edit distance (Damerau: a swap of
 * two neighbours costs 1), when it is within a third of the name's length (at least 2 edits); '' otherwise.
 * Callers pass only the candidates that would be valid there (plugins of the kind needed, experiments).
 */
export function didYouMean(name: string, candidates: readonly string[]): string {
  const distance = (a: string, b: string): number => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
    for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
    return d[a.length][b.length];
  };
  const lower = name.toLowerCase();
  let best = '', bestD = Infinity;
  for (const c of candidates) {
    const dist = distance(lower, c.toLowerCase());
    if (dist < bestD) { best = c; bestD = dist; }
  }
  return best && bestD <= Math.max(2, Math.floor(name.length / 3)) ? ` — did you mean '${best}'?` : '';
}
