/**
 * M3D-Data loaders (docs/report-datasets.md):
 *
 * - **M3D-Cap**: `M3D_Cap.json` = { "train": [ { "image": "ct_case/000006/Axial_non_contrast.npy",
 *   "text": "ct_case/000006/text.txt" } ], "validation": [ … ], "test": [ … ] }, paths relative to the data
 *   root (default: the JSON's folder). The text file holds the caption; the image is M3D's preprocessed
 *   1×32×256×256 array (or a NIfTI, which `m3dPreprocess` turns into one).
 * - **M3D-VQA**: `M3D_VQA_{train,val,test}.csv` with columns "Image Path", "Question Type", "Question",
 *   "Choice A".."Choice D", "Answer", "Answer Choice" (M3D's VQADataset answers "X. text"; Med3DLLM the letter).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { OPTION_LETTERS, vqaPrompt, type Letter, type Split, type VqaSample } from './amos.ts';
import { readCsvFile, requireColumns } from './csv.ts';
import { JsonReader, dataAt, jp, readJsonFile } from './json.ts';

const SPLIT_KEYS: Record<string, Split> = { train: 'train', training: 'train', validation: 'val', val: 'val', test: 'test' };

export interface CaptionSample {
  id: string;
  split: Split;
  image: string;
  text: string;
}

export function readM3DCap(file: string, opts: { root?: string; checkImages?: boolean } = {}): CaptionSample[] {
  const r = new JsonReader(file);
  const root = r.object(readJsonFile(file, 'M3D-Cap JSON'), '$');
  const base = path.resolve(opts.root ?? path.dirname(path.resolve(file)));
  const keys = Object.keys(root).filter((k) => SPLIT_KEYS[k]);
  if (keys.length === 0) throw r.fail('$', 'has no split: expected "train", "validation" and/or "test"');
  const out: CaptionSample[] = [];
  for (const key of keys) {
    r.array(root[key], jp('$', key)).forEach((raw, n) => {
      const at = jp(jp('$', key), n);
      const item = r.object(raw, at);
      const imageRel = r.string(item.image, jp(at, 'image'), { nonEmpty: true });
      const textRel = r.string(item.text, jp(at, 'text'), { nonEmpty: true });
      const image = path.resolve(base, imageRel);
      if ((opts.checkImages ?? true) && !existsSync(image)) throw r.fail(jp(at, 'image'), `image ${imageRel} not found under ${base}`);
      const textFile = path.resolve(base, textRel);
      let text: string;
      try {
        text = readFileSync(textFile, 'utf8').trim();
      } catch {
        throw r.fail(jp(at, 'text'), `caption file ${textRel} not found under ${base}`);
      }
      if (!text) throw r.fail(jp(at, 'text'), `caption file ${textRel} is empty`);
      out.push({ id: path.dirname(imageRel).split(path.sep).join('/') || imageRel, split: SPLIT_KEYS[key], image, text });
    });
  }
  return out;
}

const VQA_COLUMNS = ['Image Path', 'Question', 'Choice A', 'Choice B', 'Choice C', 'Choice D', 'Answer Choice'];

export interface M3DVqaSample extends VqaSample {
  /** M3D's answer string "X. text". */
  answerText: string;
}

export function readM3DVqa(file: string, split: Split, opts: { root?: string; checkImages?: boolean } = {}): M3DVqaSample[] {
  const t = readCsvFile(file, 'M3D-VQA table');
  requireColumns(t, VQA_COLUMNS, 'M3D-VQA table');
  const base = path.resolve(opts.root ?? path.dirname(path.resolve(file)));
  return t.rows.map(({ row, values }) => {
    const at = (c: string) => `row ${row}, column ${JSON.stringify(c)}`;
    const imageRel = values['Image Path'].trim();
    if (!imageRel) throw dataAt(file, at('Image Path'), 'is empty');
    const image = path.resolve(base, imageRel);
    if ((opts.checkImages ?? true) && !existsSync(image)) throw dataAt(file, at('Image Path'), `image ${imageRel} not found under ${base}`);
    const options = {} as Record<Letter, string>;
    for (const l of OPTION_LETTERS) {
      options[l] = values[`Choice ${l}`].trim();
      if (!options[l]) throw dataAt(file, at(`Choice ${l}`), 'is empty: a multiple-choice item needs four options');
    }
    const answer = values['Answer Choice'].trim().toUpperCase();
    if (!(OPTION_LETTERS as readonly string[]).includes(answer)) throw dataAt(file, at('Answer Choice'), `'${values['Answer Choice']}' is not one of A, B, C, D`);
    const question = values.Question.trim();
    if (!question) throw dataAt(file, at('Question'), 'is empty');
    const letter = answer as Letter;
    const s: M3DVqaSample = {
      scanId: path.dirname(imageRel).split(path.sep).join('/') || imageRel,
      split,
      image,
      question,
      options,
      answer: letter,
      prompt: vqaPrompt(question, options),
      answerText: `${letter}. ${(values.Answer ?? '').trim() || options[letter]}`,
    };
    if (values['Question Type'] !== undefined && values['Question Type'].trim()) s.type = values['Question Type'].trim();
    return s;
  });
}
