/**
 * CT-RATE reports (docs/report-datasets.md): `train_reports.csv` / `validation_reports.csv` with columns
 * VolumeName, ClinicalInformation_EN, Technique_EN, Findings_EN, Impressions_EN. A volume name
 * `train_12_a_2.nii.gz` lives at `<root>/train/train_12/train_12_a/train_12_a_2.nii.gz` (patient
 * `train_12`, scan `a`, reconstruction `2`): reconstructions of one patient must stay in one split.
 *
 * The paper tags each findings sentence chest / abdomen / pelvis by organ mentions to match AMOS-MM's
 * regions (spec §3.6); `regionFindings` does that with a keyword list (a rule, not a trained NER — the
 * list is below, so what it does is visible).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Split } from './amos.ts';
import { readCsvFile, requireColumns } from './csv.ts';
import { dataAt } from './json.ts';

export interface CtRateReport {
  volume: string;
  patient: string;
  split: Split;
  image: string;
  clinical: string;
  technique: string;
  findings: string;
  impression: string;
  /** Findings sentences by region (chest when no organ keyword of another region is named). */
  regions: Record<'chest' | 'abdomen' | 'pelvis', string>;
}

const NAME = /^(train|valid)_(\d+)_([a-z]+)_(\d+)\.nii(\.gz)?$/;

/** Keywords that move a sentence out of the chest region (CT-RATE scans are chest CTs). */
const REGION_KEYWORDS: Record<'abdomen' | 'pelvis', RegExp> = {
  abdomen: /\b(liver|hepat\w*|spleen|splen\w*|kidneys?|renal|adrenal\w*|pancrea\w*|gall ?bladder|cholecyst\w*|bile|biliary|stomach|gastric|bowel|intestin\w*|colon\w*|duoden\w*|abdom\w*|peritone\w*|ascites|portal)\b/i,
  pelvis: /\b(pelvi\w*|bladder|prostat\w*|uter\w*|ovar\w*|rectum|rectal|sigmoid|iliac|inguinal)\b/i,
};

/** Split findings text into sentences and assign each to chest, abdomen or pelvis. */
export function regionFindings(findings: string): Record<'chest' | 'abdomen' | 'pelvis', string> {
  const out = { chest: [] as string[], abdomen: [] as string[], pelvis: [] as string[] };
  const sentences = findings.replace(/\s+/g, ' ').split(/(?<=[.!?])\s+(?=[A-Z0-9])/).map((s) => s.trim()).filter(Boolean);
  for (const s of sentences) {
    // "gallbladder" contains "bladder": the abdominal match wins over the pelvic one.
    if (REGION_KEYWORDS.abdomen.test(s)) out.abdomen.push(s);
    else if (REGION_KEYWORDS.pelvis.test(s)) out.pelvis.push(s);
    else out.chest.push(s);
  }
  return { chest: out.chest.join(' '), abdomen: out.abdomen.join(' '), pelvis: out.pelvis.join(' ') };
}

/** Where CT-RATE puts a volume, from its name. */
export function ctRateImagePath(root: string, volume: string, file = 'CT-RATE', row = 0): { image: string; patient: string; split: Split } {
  const m = NAME.exec(volume);
  if (!m) throw dataAt(file, `row ${row}, column "VolumeName"`, `'${volume}' is not a CT-RATE volume name (train_<patient>_<scan>_<reconstruction>.nii.gz)`);
  const [, kind, patient, scan] = m;
  const folder = kind === 'train' ? 'train' : 'valid';
  const image = path.join(root, folder, `${kind}_${patient}`, `${kind}_${patient}_${scan}`, volume);
  return { image, patient: `${kind}_${patient}`, split: kind === 'train' ? 'train' : 'val' };
}

export function readCtRateReports(file: string, opts: { root?: string; checkImages?: boolean } = {}): CtRateReport[] {
  const t = readCsvFile(file, 'CT-RATE report table');
  requireColumns(t, ['VolumeName', 'Findings_EN'], 'CT-RATE report table');
  const root = path.resolve(opts.root ?? path.dirname(path.resolve(file)));
  const seen = new Map<string, number>();
  return t.rows.map(({ row, values }) => {
    const volume = values.VolumeName.trim();
    const prev = seen.get(volume);
    if (prev !== undefined) throw dataAt(file, `row ${row}, column "VolumeName"`, `volume ${volume} is listed twice (also row ${prev})`);
    seen.set(volume, row);
    const { image, patient, split } = ctRateImagePath(root, volume, file, row);
    if (opts.checkImages && !existsSync(image)) throw dataAt(file, `row ${row}, column "VolumeName"`, `volume not found at ${image}`);
    const findings = values.Findings_EN.trim();
    if (!findings) throw dataAt(file, `row ${row}, column "Findings_EN"`, 'is empty');
    return {
      volume, patient, split, image, findings,
      clinical: (values.ClinicalInformation_EN ?? '').trim(),
      technique: (values.Technique_EN ?? '').trim(),
      impression: (values.Impressions_EN ?? '').trim(),
      regions: regionFindings(findings),
    };
  });
}
