/**
 * `llmed data generate report-proxy|report-proxy-brain` — the report-generation stand-in (packages/reports):
 * pseudo-subjects of the one CT (or of the aseg-labelled brains), synthetic findings with known truth,
 * templated per-region findings, multiple-choice questions and a hashed split manifest, written atomically.
 */
import path from 'node:path';
import { LlmedError } from '@llmed/core';
import { DEFAULTS, generateReportProxy, STATEMENT, BRAIN_STATEMENT } from '@llmed/reports';
import { flagNumber, flagString, type ParsedArgs } from './args.ts';
import { Progress } from './progress.ts';

const KINDS = { 'report-proxy': 'ct', 'report-proxy-brain': 'brain' } as const;

function vec3(args: ParsedArgs, key: string): [number, number, number] | undefined {
  const v = flagString(args, key);
  if (v === undefined) return undefined;
  const parts = v.split(/[x,]/).map(Number);
  if (parts.length !== 3 || parts.some((n) => !Number.isInteger(n) || n < 2)) throw new LlmedError('usage', `--${key} must be three integers ≥ 2 like 96x84x112, got '${v}'`);
  return parts as [number, number, number];
}

export async function dataGenerate(args: ParsedArgs): Promise<number> {
  const what = args.positionals[0];
  const kind = KINDS[what as keyof typeof KINDS];
  if (!kind) throw new LlmedError('usage', `data generate needs what to generate: ${Object.keys(KINDS).join(' or ')}${what ? ` (got '${what}')` : ''}`, { hint: 'llmed data generate report-proxy --out runs/data/report-proxy' });
  const out = path.resolve(flagString(args, 'out') ?? path.join('runs', 'data', what));
  const count = flagNumber(args, 'count') ?? DEFAULTS[kind].count;
  const seed = flagNumber(args, 'seed') ?? 0;
  const heldOut = flagString(args, 'held-out');
  const bar = new Progress(`generating ${what}`, count);
  const r = await generateReportProxy({
    anatomy: kind, out, count, seed, force: Boolean(args.flags.force),
    dataDir: flagString(args, 'data-dir'),
    cropSize: vec3(args, 'crop'),
    outShape: vec3(args, 'shape'),
    blockGap: flagNumber(args, 'block-gap'),
    heldOut: heldOut === undefined ? undefined : heldOut.split(',').map((s) => s.trim()).filter(Boolean),
    onProgress: (done) => bar.update(done),
  });
  bar.done();
  const relative = path.relative(process.cwd(), r.out);
  const rel = relative && !relative.startsWith('..') ? relative : r.out;
  const mb = (r.bytes / 1e6).toFixed(1);
  if (args.flags.json) process.stdout.write(`${JSON.stringify({ ...r, statement: kind === 'ct' ? STATEMENT : BRAIN_STATEMENT }, null, 2)}\n`);
  else {
    console.log(`generated ${rel}: train ${r.counts.train} / val ${r.counts.val} / test ${r.counts.test} samples, ${r.reports} region reports, ${r.questions} questions, ${mb} MB in ${r.seconds.toFixed(1)} s`);
    console.log(`manifest hash ${r.hash}`);
    console.log(`(${kind === 'ct' ? STATEMENT : BRAIN_STATEMENT})`);
  }
  return 0;
}
