/**
 * AMOS-MM 2024 loader (the layout of Med3DLLM's and the bowang-lab solution's `dataset.json`, see
 * docs/report-datasets.md):
 *
 *   { "training":   [ item, … ],  "validation": [ item, … ],  "test": [ item, … ] }     (any subset)
 *   item = { "image": "imagesTr/amos_0001.nii.gz",            (relative to the JSON file's folder)
 *            "id"?: "amos_0001",                               (default: the image name without .nii[.gz])
 *            "meta"?: { … },                                   (kept as is)
 *            "labels": { "report": { "findings": { "chest": str, "abdomen": str, "pelvis": str } },
 *                        "vqa"?: [ { "question": str, "options": { "A": str, "B": str, "C": str, "D": str },
 *                                    "answer": "A".."D", "type"?: str, "reasoning"?: str } ] } }
 *
 * One report sample per (scan, non-empty region), as Med3DLLM's region datasets do (an empty or missing
 * region is skipped, not trained on as an empty answer); one VQA sample per item. The prompts are the
 * ones of spec §3.4 so that training and evaluation ask what the paper's code asks.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { JsonReader, jp, readJsonFile } from './json.ts';

export const AMOS_REGIONS = ['chest', 'abdomen', 'pelvis'] as const;
export type Split = 'train' | 'val' | 'test';
export const OPTION_LETTERS = ['A', 'B', 'C', 'D'] as const;
export type Letter = (typeof OPTION_LETTERS)[number];

/** Top-level keys accepted for each split (the challenge's names and the short ones). */
const SPLIT_KEYS: Record<string, Split> = { training: 'train', train: 'train', validation: 'val', val: 'val', test: 'test', testing: 'test' };

export interface VqaItem {
  question: string;
  options: Record<Letter, string>;
  answer: Letter;
  type?: string;
  reasoning?: string;
}

export interface AmosScan {
  id: string;
  split: Split;
  /** Absolute path of the image. */
  image: string;
  /** Findings per region; '' where the region has none. */
  findings: Record<string, string>;
  vqa: VqaItem[];
  meta?: Record<string, unknown>;
  /** Where the item is: `<file> $.training[3]` (for messages downstream). */
  where: string;
}

export interface ReportSample {
  scanId: string;
  split: Split;
  image: string;
  region: string;
  prompt: string;
  answer: string;
}

export interface VqaSample extends VqaItem {
  scanId: string;
  split: Split;
  image: string;
  /** The question as the model sees it after the image tokens: `question Choices: A. … B. … C. … D. …`. */
  prompt: string;
}

export interface AmosDataset {
  file: string;
  scans: AmosScan[];
  reports: ReportSample[];
  vqa: VqaSample[];
}

export interface AmosOptions {
  /** Regions to read (default chest, abdomen, pelvis; the brain stand-in uses ['brain']). */
  regions?: readonly string[];
  /** Check that every image exists (default true). */
  checkImages?: boolean;
}

/** Med3DLLM's per-region report prompt (spec §3.4), appended directly after the image tokens. */
export function regionPrompt(region: string): string {
  return `please provide a detailed caption outlining the findings in ${region} of this image.`;
}

/** The VQA text after the image tokens (spec §3.4): `question Choices: A. … B. … C. … D. …`. */
export function vqaPrompt(question: string, options: Record<Letter, string>): string {
  return `${question} Choices: ${OPTION_LETTERS.map((l) => `${l}. ${options[l]}`).join(' ')}`;
}

function stripNiftiExt(name: string): string {
  return name.replace(/\.nii(\.gz)?$/i, '').replace(/\.(npy|nrrd|mha|mhd)$/i, '');
}

export function readVqaItem(r: JsonReader, v: unknown, at: string): VqaItem {
  const o = r.object(v, at);
  const question = r.string(o.question, jp(at, 'question'), { nonEmpty: true });
  const optsAt = jp(at, 'options');
  const optsObj = r.object(o.options, optsAt);
  const options = {} as Record<Letter, string>;
  for (const l of OPTION_LETTERS) options[l] = r.string(optsObj[l], jp(optsAt, l), { nonEmpty: true });
  const extra = Object.keys(optsObj).filter((k) => !(OPTION_LETTERS as readonly string[]).includes(k));
  if (extra.length) throw r.fail(optsAt, `has options ${extra.join(', ')}: exactly A, B, C and D are expected`);
  const answer = r.string(o.answer, jp(at, 'answer')).trim().toUpperCase();
  if (!(OPTION_LETTERS as readonly string[]).includes(answer)) throw r.fail(jp(at, 'answer'), `answer '${String(o.answer)}' is not one of A, B, C, D`);
  const item: VqaItem = { question, options, answer: answer as Letter };
  if (o.type !== undefined) item.type = r.string(o.type, jp(at, 'type'));
  if (o.reasoning !== undefined && o.reasoning !== null) item.reasoning = r.string(o.reasoning, jp(at, 'reasoning'));
  return item;
}

/** Load an AMOS-MM style dataset JSON. Every problem is one LlmedError naming the file and JSON path. */
export function readAmosMM(file: string, opts: AmosOptions = {}): AmosDataset {
  const regions = opts.regions ?? AMOS_REGIONS;
  const checkImages = opts.checkImages ?? true;
  const r = new JsonReader(file);
  const root = r.object(readJsonFile(file, 'AMOS-MM dataset JSON'), '$');
  const dir = path.dirname(path.resolve(file));
  const scans: AmosScan[] = [];
  const seen = new Map<string, string>();
  const splitKeys = Object.keys(root).filter((k) => SPLIT_KEYS[k] !== undefined);
  if (splitKeys.length === 0) {
    throw r.fail('$', `has no split: expected one or more of "training", "validation", "test" (found ${Object.keys(root).map((k) => JSON.stringify(k)).join(', ') || 'nothing'})`);
  }
  for (const key of splitKeys) {
    const split = SPLIT_KEYS[key];
    const list = r.array(root[key], jp('$', key));
    list.forEach((raw, n) => {
      const at = jp(jp('$', key), n);
      const item = r.object(raw, at);
      const imageRel = r.string(item.image, jp(at, 'image'), { nonEmpty: true });
      const image = path.resolve(dir, imageRel);
      if (checkImages && !existsSync(image)) throw r.fail(jp(at, 'image'), `image ${imageRel} not found (looked at ${image})`, 'image paths are relative to the folder of the dataset JSON');
      const id = item.id === undefined ? stripNiftiExt(path.basename(imageRel)) : r.string(item.id, jp(at, 'id'), { nonEmpty: true });
      const dup = seen.get(id);
      if (dup) throw r.fail(at, `scan id '${id}' is also used at ${dup}`, 'ids (or image names) must be unique across splits');
      seen.set(id, at);
      const labels = r.object(item.labels, jp(at, 'labels'));
      const reportAt = jp(jp(at, 'labels'), 'report');
      const report = r.object(labels.report, reportAt);
      const fAt = jp(reportAt, 'findings');
      const f = r.object(report.findings, fAt);
      const findings: Record<string, string> = {};
      for (const region of regions) findings[region] = r.optionalString(f[region], jp(fAt, region)).trim();
      const unknownRegions = Object.keys(f).filter((k) => !regions.includes(k));
      if (unknownRegions.length) throw r.fail(fAt, `has region(s) ${unknownRegions.join(', ')}; this loader reads ${regions.join(', ')}`, 'pass regions to readAmosMM to read other regions');
      const vqaRaw = labels.vqa ?? labels.qa;
      const vqaAt = jp(jp(at, 'labels'), labels.vqa !== undefined ? 'vqa' : 'qa');
      const vqa = vqaRaw === undefined || vqaRaw === null ? [] : r.array(vqaRaw, vqaAt).map((q, i) => readVqaItem(r, q, jp(vqaAt, i)));
      const scan: AmosScan = { id, split, image, findings, vqa, where: `${file} ${at}` };
      if (item.meta !== undefined) scan.meta = r.object(item.meta, jp(at, 'meta'));
      scans.push(scan);
    });
  }
  const reports: ReportSample[] = [];
  const vqa: VqaSample[] = [];
  for (const s of scans) {
    for (const region of regions) {
      const answer = s.findings[region];
      if (answer) reports.push({ scanId: s.id, split: s.split, image: s.image, region, prompt: regionPrompt(region), answer });
    }
    for (const q of s.vqa) vqa.push({ ...q, scanId: s.id, split: s.split, image: s.image, prompt: vqaPrompt(q.question, q.options) });
  }
  return { file, scans, reports, vqa };
}
