/**
 * The oracle baseline of bench/reports/reports.ts: a report written from the stand-in's true facts (its
 * facts sidecar, from the labels) by the grammar again, with another paraphrase seed. Its fact-f1 must be
 * 1.0: the parser reads every sentence the grammar writes, whichever paraphrase.
 */
import { isAbsolute, resolve } from 'node:path';
import { readReportProxy, Rng, seedFrom, writeFact, type Fact, type ReportProxy } from '@llmed/reports';

let proxy: ReportProxy | undefined;

export async function oracleReport(root: string, config: { data: { root: string } }, sample: { scanId: string; region?: string }): Promise<string> {
  proxy ??= readReportProxy(isAbsolute(config.data.root) ? config.data.root : resolve(root, config.data.root));
  const facts = (proxy.facts[sample.scanId]?.[sample.region ?? ''] ?? []) as Fact[];
  const rng = new Rng(seedFrom('oracle', sample.scanId, sample.region ?? ''));
  return facts.map((f) => writeFact(f, (xs) => rng.pick(xs))).join(' ');
}
