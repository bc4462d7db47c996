/**
 * Reading a generated stand-in back: the AMOS-MM loader (the same one real data goes through) plus the
 * facts sidecar and the manifest.
 */
import path from 'node:path';
import { readAmosMM, type AmosDataset } from '../amos.ts';
import { JsonReader, readJsonFile } from '../json.ts';
import type { Fact } from './facts.ts';
import { FORMAT } from './generate.ts';

export interface ReportProxy extends AmosDataset {
  dir: string;
  manifest: Record<string, unknown> & { hash: string; statement: string };
  /** Facts per sample id and region. */
  facts: Record<string, Record<string, Fact[]>>;
  truth: Record<string, Record<string, unknown>>;
}

export function readReportProxy(dir: string): ReportProxy {
  const manifestFile = path.join(dir, 'manifest.json');
  const r = new JsonReader(manifestFile);
  const manifest = r.object(readJsonFile(manifestFile, 'report-proxy manifest'), '$');
  if (manifest.format !== FORMAT) throw r.fail('$.format', `is ${JSON.stringify(manifest.format)}, expected "${FORMAT}"`, 'regenerate with llmed data generate report-proxy');
  const config = r.object(manifest.config, '$.config');
  const regions = config.anatomy === 'brain' ? ['brain'] : ['chest', 'abdomen', 'pelvis'];
  const data = readAmosMM(path.join(dir, 'dataset.json'), { regions });
  const factsFile = path.join(dir, 'facts.json');
  const fr = new JsonReader(factsFile);
  const samples = fr.object(fr.object(readJsonFile(factsFile, 'report-proxy facts sidecar'), '$').samples, '$.samples');
  const facts: Record<string, Record<string, Fact[]>> = {};
  const truth: Record<string, Record<string, unknown>> = {};
  for (const s of data.scans) {
    const t = samples[s.id];
    if (t === undefined) throw fr.fail(`$.samples.${s.id}`, `sample ${s.id} of dataset.json has no facts`);
    truth[s.id] = fr.object(t, `$.samples.${s.id}`);
    facts[s.id] = fr.object(truth[s.id].facts, `$.samples.${s.id}.facts`) as Record<string, Fact[]>;
  }
  return { ...data, dir, manifest: manifest as ReportProxy['manifest'], facts, truth };
}
