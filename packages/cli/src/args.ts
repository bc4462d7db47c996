/** A small argument parser: positionals, `--flag value`, `--flag=value`, boolean `--flag`. */
import { LlmedError } from '@llmed/core';

export interface ParsedArgs { positionals: string[]; flags: Record<string, string | boolean> }

export function parseArgs(argv: string[], booleans: readonly string[] = []): ParsedArgs {
  const positionals: string[] = [];
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const key = a.slice(2, eq < 0 ? undefined : eq);
      if (eq >= 0) flags[key] = a.slice(eq + 1);
      else if (booleans.includes(key) || i + 1 >= argv.length || argv[i + 1].startsWith('--')) flags[key] = true;
      else flags[key] = argv[++i];
    } else positionals.push(a);
  }
  return { positionals, flags };
}

export function flagString(args: ParsedArgs, key: string): string | undefined {
  const v = args.flags[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new LlmedError('usage', `--${key} needs a value`);
  return v;
}

export function flagNumber(args: ParsedArgs, key: string): number | undefined {
  const v = flagString(args, key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new LlmedError('usage', `--${key} must be a number, got '${v}'`);
  return n;
}

export function allowFlags(args: ParsedArgs, allowed: readonly string[], command: string): void {
  for (const k of Object.keys(args.flags)) {
    if (!allowed.includes(k) && k !== 'debug') throw new LlmedError('usage', `unknown option --${k} for '${command}'; options: ${allowed.map((a) => `--${a}`).join(', ') || '(none)'}`);
  }
}
