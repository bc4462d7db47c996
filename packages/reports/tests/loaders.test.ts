import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isLlmedError } from '@llmed/core/errors';
import { parseCsv, readAmosMM, readCtRateReports, readM3DCap, readM3DVqa, regionFindings, regionPrompt } from '@llmed/reports';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const tmp = mkdtempSync(path.join(tmpdir(), 'llmed-reports-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The error `fn` throws, checked to be one LlmedError of kind 'data' whose where names the file and `at`. */
function dataErrorOf(fn: () => unknown, file: string, at: string): string {
  let caught: unknown;
  try { fn(); } catch (e) { caught = e; }
  expect(isLlmedError(caught), `expected an LlmedError, got ${String(caught)}`).toBe(true);
  const e = caught as { kind: string; where?: string; message: string; format(): string };
  expect(e.kind).toBe('data');
  expect(e.where).toContain(file);
  expect(e.where).toContain(at);
  expect(e.message.includes('\n')).toBe(false);
  return e.format();
}

/** A copy of the AMOS fixture folder with dataset.json edited by `edit`. */
function amosVariant(name: string, edit: (d: any) => void): string {
  const dir = path.join(tmp, name);
  cpSync(path.join(FIX, 'amos'), dir, { recursive: true });
  const d = JSON.parse(readFileSync(path.join(FIX, 'amos/dataset.json'), 'utf8'));
  edit(d);
  writeFileSync(path.join(dir, 'dataset.json'), JSON.stringify(d));
  return path.join(dir, 'dataset.json');
}

describe('AMOS-MM loader', () => {
  const ds = readAmosMM(path.join(FIX, 'amos/dataset.json'));

  it('reads scans, splits, findings per region and VQA items', () => {
    expect(ds.scans.map((s) => [s.id, s.split])).toEqual([['amos_0001', 'train'], ['amos_0002', 'train'], ['amos_0500', 'val']]);
    expect(ds.scans[0].findings.pelvis).toBe('');
    expect(ds.scans[1].findings.chest).toBe(''); // null means no findings
    expect(ds.scans[0].meta).toEqual({ spacing: [0.78, 0.78, 5.0], sex: 'F' });
    expect(ds.scans[0].image).toBe(path.join(FIX, 'amos/imagesTr/amos_0001.nii.gz'));
  });

  it('gives one report sample per scan and non-empty region, with the paper code prompt', () => {
    expect(ds.reports.map((r) => `${r.scanId}/${r.region}`)).toEqual(['amos_0001/chest', 'amos_0001/abdomen', 'amos_0002/abdomen', 'amos_0002/pelvis', 'amos_0500/abdomen']);
    expect(ds.reports[0].prompt).toBe(regionPrompt('chest'));
    expect(ds.reports[0].prompt).toBe('please provide a detailed caption outlining the findings in chest of this image.');
    expect(ds.reports[3].answer).toBe('The bladder is distended.');
  });

  it('gives one VQA sample per item, letters normalised, with the Choices prompt', () => {
    expect(ds.vqa).toHaveLength(2);
    expect(ds.vqa[0]).toMatchObject({ answer: 'D', type: 'presence', reasoning: 'the report says no pleural effusion' });
    expect(ds.vqa[1].answer).toBe('A');
    expect(ds.vqa[0].prompt).toBe('Is there a pleural effusion? Choices: A. yes, left B. yes, right C. bilateral D. no');
  });

  it('names the file and JSON path of every kind of bad input', () => {
    const cases: Array<[string, (d: any) => void, string, RegExp]> = [
      ['no-split', (d) => { d.train_set = d.training; delete d.training; delete d.validation; }, '$', /no split/],
      ['bad-letter', (d) => { d.training[0].labels.vqa[0].answer = 'E'; }, '$.training[0].labels.vqa[0].answer', /not one of A, B, C, D/],
      ['three-options', (d) => { delete d.training[0].labels.vqa[1].options.D; }, '$.training[0].labels.vqa[1].options.D', /expected a string/],
      ['number-findings', (d) => { d.training[1].labels.report.findings.abdomen = 3; }, '$.training[1].labels.report.findings.abdomen', /expected a string/],
      ['no-report', (d) => { delete d.validation[0].labels.report; }, '$.validation[0].labels.report', /expected an object/],
      ['unknown-region', (d) => { d.validation[0].labels.report.findings.neck = 'x'; }, '$.validation[0].labels.report.findings', /neck/],
      ['duplicate-id', (d) => { d.validation[0].id = 'amos_0001'; }, '$.validation[0]', /also used at \$\.training\[0\]/],
      ['missing-image', (d) => { d.training[1].image = 'imagesTr/nope.nii.gz'; }, '$.training[1].image', /not found/],
    ];
    for (const [name, edit, at, msg] of cases) {
      const file = amosVariant(name, edit);
      expect(dataErrorOf(() => readAmosMM(file), file, at)).toMatch(msg);
    }
  });

  it('reports a syntax error and a missing file as one data error naming the file', () => {
    const bad = path.join(tmp, 'broken.json');
    writeFileSync(bad, '{"training": [');
    expect(dataErrorOf(() => readAmosMM(bad), bad, '$')).toMatch(/not valid JSON/);
    const none = path.join(tmp, 'none.json');
    expect(dataErrorOf(() => readAmosMM(none), none, '')).toMatch(/ENOENT/);
  });
});

describe('M3D-Cap and M3D-VQA loaders', () => {
  it('reads captions from their text files', () => {
    const caps = readM3DCap(path.join(FIX, 'm3d/M3D_Cap.json'));
    expect(caps.map((c) => [c.id, c.split])).toEqual([['ct_case/000006', 'train'], ['ct_case/000007', 'test']]);
    expect(caps[0].text).toBe('A 3 cm hypodense lesion in segment VII of the liver.\nNo ascites.');
  });

  it('reads VQA rows with quoted commas, quotes and newlines; M3D and Med3DLLM answers', () => {
    const q = readM3DVqa(path.join(FIX, 'm3d/M3D_VQA_train.csv'), 'train');
    expect(q).toHaveLength(2);
    expect(q[1].options).toEqual({ A: 'Spleen', B: 'Liver, segment VII', C: 'Kidney "left"', D: 'Pancreas' });
    expect(q[1].answer).toBe('B');
    expect(q[1].answerText).toBe('B. Liver, segment VII');
    expect(q[1].question).toBe('Where is the lesion, roughly?');
    expect(q[0].type).toBe('1');
  });

  it('names file, row and column of bad VQA input; file and JSON path of bad caption input', () => {
    const csv = path.join(tmp, 'vqa.csv');
    writeFileSync(csv, readFileSync(path.join(FIX, 'm3d/M3D_VQA_train.csv'), 'utf8').replace(',Axial,A\n', ',Axial,Z\n'));
    copyFileSync(path.join(FIX, 'm3d/M3D_Cap.json'), path.join(tmp, 'M3D_Cap.json'));
    expect(dataErrorOf(() => readM3DVqa(csv, 'train', { root: path.join(FIX, 'm3d') }), csv, 'row 2, column "Answer Choice"')).toMatch(/not one of A, B, C, D/);
    const nocol = path.join(tmp, 'nocol.csv');
    writeFileSync(nocol, 'Image Path,Question\nx,y\n');
    expect(dataErrorOf(() => readM3DVqa(nocol, 'train', { checkImages: false }), nocol, 'row 1')).toMatch(/Choice A/);
    const cap = path.join(tmp, 'cap.json');
    writeFileSync(cap, JSON.stringify({ train: [{ image: 'ct_case/000006/Axial_portal_venous.npy', text: 'ct_case/000006/missing.txt' }] }));
    expect(dataErrorOf(() => readM3DCap(cap, { root: path.join(FIX, 'm3d') }), cap, '$.train[0].text')).toMatch(/not found/);
    const unclosed = path.join(tmp, 'unclosed.csv');
    writeFileSync(unclosed, 'a,b\n"x,y\n');
    expect(dataErrorOf(() => parseCsv(readFileSync(unclosed, 'utf8'), unclosed), unclosed, 'row 2')).toMatch(/never closed/);
  });
});

describe('CT-RATE reports', () => {
  const rows = readCtRateReports(path.join(FIX, 'ctrate/train_reports.csv'));

  it('maps volume names to the CT-RATE folder layout and patients', () => {
    expect(rows.map((r) => [r.patient, r.split])).toEqual([['train_1', 'train'], ['train_1', 'train'], ['valid_3', 'val']]);
    expect(rows[0].image).toBe(path.join(FIX, 'ctrate/train/train_1/train_1_a/train_1_a_1.nii.gz'));
    expect(rows[2].image).toBe(path.join(FIX, 'ctrate/valid/valid_3/valid_3_b/valid_3_b_1.nii.gz'));
    expect(rows[1].findings).toBe('Trachea is open.\nNo pleural effusion.');
  });

  it('tags findings sentences by region from organ mentions', () => {
    expect(rows[0].regions).toEqual({
      chest: 'Trachea and both main bronchi are open. There is a 5 mm nodule in the right upper lobe.',
      abdomen: 'A hypodense lesion is seen in the liver. The gallbladder is not distended.',
      pelvis: 'Degenerative changes in the iliac bones.',
    });
    expect(regionFindings('Bilateral renal cortical cysts. Mediastinal structures are normal.')).toEqual({ chest: 'Mediastinal structures are normal.', abdomen: 'Bilateral renal cortical cysts.', pelvis: '' });
  });

  it('names file, row and column of a bad volume name or empty findings', () => {
    const f = path.join(tmp, 'ctrate.csv');
    writeFileSync(f, 'VolumeName,Findings_EN\ntrain_1_a_1.nii.gz,ok.\nscan7.nii.gz,ok.\n');
    expect(dataErrorOf(() => readCtRateReports(f), f, 'row 3, column "VolumeName"')).toMatch(/not a CT-RATE volume name/);
    writeFileSync(f, 'VolumeName,Findings_EN\ntrain_1_a_1.nii.gz,\n');
    expect(dataErrorOf(() => readCtRateReports(f), f, 'row 2, column "Findings_EN"')).toMatch(/empty/);
  });
});
