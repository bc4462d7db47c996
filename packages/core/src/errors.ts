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
