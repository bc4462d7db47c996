import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listNifti, readLearn2RegDataset, readNifti, readPairsFile } from '../src/index.ts';
import { expectLlmedError, hasShared, makeTmp, shared } from './helpers.ts';

const tmp = makeTmp();
afterAll(() => tmp.cleanup());
const root = path.join(tmp.dir, 'AbdomenMRCT');
const json = path.join(root, 'AbdomenMRCT_dataset.json');

/** A Learn2Reg-style dataset folder built from the real abdomen scans. */
const dataset = {
  name: 'AbdomenMRCT proxy',
  tensorImageSize: { '0': '3D' },
  training: [
    { image: './imagesTr/AbdomenMRCT_0001_0000.nii.gz', label: './labelsTr/AbdomenMRCT_0001_0000.nii.gz' },
    { image: './imagesTr/AbdomenMRCT_0001_0001.nii.gz', label: './labelsTr/AbdomenMRCT_0001_0001.nii.gz' },
    { image: './imagesTr/AbdomenMRCT_0002_0001.nii.gz' },
  ],
  test: ['./imagesTs/AbdomenMRCT_0003_0000.nii.gz'],
  registration_val: [{ fixed: './imagesTr/AbdomenMRCT_0001_0001.nii.gz', moving: './imagesTr/AbdomenMRCT_0001_0000.nii.gz' }],
  registration_test: [{ fixed: './imagesTr/AbdomenMRCT_0002_0001.nii.gz', moving: './imagesTs/AbdomenMRCT_0003_0000.nii.gz' }],
};

const writeJson = (file: string, j: unknown) => writeFileSync(file, JSON.stringify(j, null, 2));

describe.skipIf(!hasShared)('Learn2Reg dataset JSON on real files', () => {
  beforeAll(() => {
    for (const d of ['imagesTr', 'labelsTr', 'imagesTs']) mkdirSync(path.join(root, d), { recursive: true });
    copyFileSync(shared('abdomen/example_mr_sm.nii.gz'), path.join(root, 'imagesTr/AbdomenMRCT_0001_0000.nii.gz'));
    copyFileSync(shared('abdomen/example_seg_mr.nii.gz'), path.join(root, 'labelsTr/AbdomenMRCT_0001_0000.nii.gz'));
    copyFileSync(shared('abdomen/example_ct_sm.nii.gz'), path.join(root, 'imagesTr/AbdomenMRCT_0001_0001.nii.gz'));
    copyFileSync(shared('abdomen/example_seg.nii.gz'), path.join(root, 'labelsTr/AbdomenMRCT_0001_0001.nii.gz'));
    copyFileSync(shared('abdomen/example_ct_sm.nii.gz'), path.join(root, 'imagesTr/AbdomenMRCT_0002_0001.nii.gz'));
    copyFileSync(shared('abdomen/example_mr_sm.nii.gz'), path.join(root, 'imagesTs/AbdomenMRCT_0003_0000.nii.gz'));
    writeJson(json, dataset);
  });

  it('resolves entries against the JSON folder and attaches labels to pairs', async () => {
    const ds = readLearn2RegDataset(json);
    expect(ds.name).toBe('AbdomenMRCT proxy');
    expect(ds.training).toHaveLength(3);
    expect(ds.training[0].image).toBe(path.join(root, 'imagesTr/AbdomenMRCT_0001_0000.nii.gz'));
    expect(ds.test[0].image).toBe(path.join(root, 'imagesTs/AbdomenMRCT_0003_0000.nii.gz'));
    expect(ds.registrationVal).toEqual([
      {
        moving: path.join(root, 'imagesTr/AbdomenMRCT_0001_0000.nii.gz'),
        fixed: path.join(root, 'imagesTr/AbdomenMRCT_0001_0001.nii.gz'),
        movingLabels: path.join(root, 'labelsTr/AbdomenMRCT_0001_0000.nii.gz'),
        fixedLabels: path.join(root, 'labelsTr/AbdomenMRCT_0001_0001.nii.gz'),
      },
    ]);
    expect(ds.registrationTest[0].fixedLabels).toBeUndefined();
    // the resolved files are real, readable volumes
    const mr = await readNifti(ds.registrationVal[0].moving);
    expect(mr.dims).toEqual([117, 91, 20]);
  });

  it('a missing file is a dataError naming the JSON file and the entry', async () => {
    const bad = path.join(root, 'missing.json');
    writeJson(bad, { ...dataset, training: [...dataset.training, { image: './imagesTr/AbdomenMRCT_0099_0000.nii.gz' }] });
    await expectLlmedError(() => readLearn2RegDataset(bad), 'data', [bad, 'training[3].image', /file not found: '.\/imagesTr\/AbdomenMRCT_0099_0000.nii.gz'/]);
    // with checkFiles: false the listing is still parsed
    expect(readLearn2RegDataset(bad, { checkFiles: false }).training).toHaveLength(4);
  });

  it('a path outside the dataset root is refused (.., absolute, symlink)', async () => {
    const up = path.join(root, 'escape.json');
    writeJson(up, { ...dataset, registration_val: [{ fixed: '../../etc/passwd', moving: './imagesTr/AbdomenMRCT_0001_0000.nii.gz' }] });
    await expectLlmedError(() => readLearn2RegDataset(up), 'data', [up, 'registration_val[0].fixed', /resolves outside the dataset folder/]);
    const abs = path.join(root, 'abs.json');
    writeJson(abs, { ...dataset, training: [{ image: shared('abdomen/example_ct.nii.gz') }] });
    await expectLlmedError(() => readLearn2RegDataset(abs), 'data', [abs, 'training[0].image', /outside the dataset folder/]);
    symlinkSync(shared('abdomen/example_ct.nii.gz'), path.join(root, 'imagesTr/linked.nii.gz'));
    const link = path.join(root, 'link.json');
    writeJson(link, { ...dataset, training: [{ image: './imagesTr/linked.nii.gz' }] });
    await expectLlmedError(() => readLearn2RegDataset(link), 'data', [link, 'training[0].image', /is a link to .*outside the dataset folder/]);
    // outside-root checks apply even without file checks
    await expectLlmedError(() => readLearn2RegDataset(up, { checkFiles: false }), 'data', [/outside/]);
  });

  it('invalid JSON and wrong shapes are clear errors', async () => {
    const broken = path.join(root, 'broken.json');
    writeFileSync(broken, '{ "training": [ ');
    await expectLlmedError(() => readLearn2RegDataset(broken), 'data', [broken, /invalid JSON/]);
    const shape = path.join(root, 'shape.json');
    writeJson(shape, { training: { image: 'x' } });
    await expectLlmedError(() => readLearn2RegDataset(shape), 'data', [shape, /"training" must be an array/]);
  });

  it('pairs files: JSON and CSV, relative to the pairs file', async () => {
    const pj = path.join(root, 'pairs.json');
    writeJson(pj, [{ moving: 'imagesTr/AbdomenMRCT_0001_0000.nii.gz', fixed: 'imagesTr/AbdomenMRCT_0001_0001.nii.gz', movingLabels: 'labelsTr/AbdomenMRCT_0001_0000.nii.gz' }]);
    const a = readPairsFile(pj);
    expect(a[0].moving).toBe(path.join(root, 'imagesTr/AbdomenMRCT_0001_0000.nii.gz'));
    expect(a[0].movingLabels).toBe(path.join(root, 'labelsTr/AbdomenMRCT_0001_0000.nii.gz'));
    const pc = path.join(root, 'pairs.csv');
    writeFileSync(
      pc,
      'moving,fixed,moving_labels,fixed_labels\n' +
        'imagesTr/AbdomenMRCT_0001_0000.nii.gz,imagesTr/AbdomenMRCT_0001_0001.nii.gz,labelsTr/AbdomenMRCT_0001_0000.nii.gz,labelsTr/AbdomenMRCT_0001_0001.nii.gz\n' +
        '"imagesTr/AbdomenMRCT_0002_0001.nii.gz",imagesTr/AbdomenMRCT_0001_0001.nii.gz,,\n',
    );
    const b = readPairsFile(pc);
    expect(b).toHaveLength(2);
    expect(b[0].fixedLabels).toBe(path.join(root, 'labelsTr/AbdomenMRCT_0001_0001.nii.gz'));
    expect(b[1].movingLabels).toBeUndefined();
    // a pair made by a known deformation names its true field (JSON key / CSV column)
    writeJson(pj, [{ moving: 'imagesTr/AbdomenMRCT_0001_0000.nii.gz', fixed: 'imagesTr/AbdomenMRCT_0001_0001.nii.gz', groundTruthField: 'labelsTr/AbdomenMRCT_0001_0000.nii.gz' }]);
    expect(readPairsFile(pj)[0].groundTruthField).toBe(path.join(root, 'labelsTr/AbdomenMRCT_0001_0000.nii.gz'));
    writeFileSync(pc, 'moving,fixed,ground_truth_field\nimagesTr/AbdomenMRCT_0001_0000.nii.gz,imagesTr/AbdomenMRCT_0001_0001.nii.gz,labelsTr/AbdomenMRCT_0001_0000.nii.gz\n');
    expect(readPairsFile(pc)[0].groundTruthField).toBe(path.join(root, 'labelsTr/AbdomenMRCT_0001_0000.nii.gz'));
  });

  it('pairs files: missing files, bad headers and unknown keys name the file and line', async () => {
    const pc = path.join(root, 'bad.csv');
    writeFileSync(pc, 'moving,fixed\nimagesTr/AbdomenMRCT_0001_0000.nii.gz,imagesTr/nope.nii.gz\n');
    await expectLlmedError(() => readPairsFile(pc), 'data', [pc, 'line 2 fixed', /file not found/]);
    const hdr = path.join(root, 'hdr.csv');
    writeFileSync(hdr, 'source,target\na,b\n');
    await expectLlmedError(() => readPairsFile(hdr), 'data', [hdr, /unknown column "source"/]);
    const pj = path.join(root, 'typo.json');
    writeJson(pj, [{ moving: 'imagesTr/AbdomenMRCT_0001_0000.nii.gz', fixd: 'x' }]);
    await expectLlmedError(() => readPairsFile(pj), 'data', [pj, /\[0\]: unknown key "fixd"/]);
  });

  it('listNifti lists the NIfTI files of a folder, sorted', () => {
    expect(listNifti(path.join(root, 'imagesTr')).map((f) => path.basename(f))).toEqual([
      'AbdomenMRCT_0001_0000.nii.gz',
      'AbdomenMRCT_0001_0001.nii.gz',
      'AbdomenMRCT_0002_0001.nii.gz',
      'linked.nii.gz',
    ]);
    expect(listNifti(path.join(root, 'nope'))).toEqual([]);
  });
});
