/**
 * `llmed data prepare` on a report experiment: an AMOS-MM-layout dataset (written here: three CT-like
 * NIfTI files and their dataset JSON) becomes the trainer's folder — one report sample per scan and
 * non-empty region, one VQA sample per question, every image preprocessed once (Merlin's pipeline, in its
 * (1, X, Y, Z) tensor order) — and a second run finds it up to date.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeVolume, writeNifti } from '@llmed/imaging';
import { llmed, repoRoot, tempDir } from '../helpers/workspace.ts';

const tmp = tempDir('llmed-report-prep-');
afterAll(() => tmp.cleanup());
const root = join(tmp.dir, 'ws');

function config(kinds: string[]) {
  return {
    task: 'report', name: 'prep', method: 'test', description: 'data preparation of a report experiment',
    data: {
      source: 'amos-mm', root: 'data/amos', manifest: 'dataset.json', title: 'three scans (test data)', howToGet: 'made by the test',
      kinds, regions: ['chest', 'abdomen', 'pelvis'], preprocess: { pipeline: 'merlin', shape: [32, 32, 16], spacing: [4, 4, 8] },
    },
    model: {
      input: { shape: [32, 32, 16], channels: 1 },
      encoder: { use: 'i3resnet152', with: { weights: 'random' } },
      projector: { use: 'linear', with: { outWidth: 64 } },
      llm: { use: 'llama3', with: { checkpoint: 'checkpoints/none', hiddenSize: 64 } },
    },
    loss: [{ use: 'token-cross-entropy', weight: 1 }],
    train: { stages: [{ name: 'p', train: ['projector'], steps: 1, lr: 0.001 }] },
  };
}

beforeAll(async () => {
  const data = join(root, 'data', 'amos');
  mkdirSync(join(data, 'images'), { recursive: true });
  mkdirSync(join(root, 'configs', 'prep'), { recursive: true });
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'llmed-prep-workspace', private: true }));
  writeFileSync(join(root, 'workspace.json'), JSON.stringify({ experiments: { prep: 'configs/prep/config.json', 'prep-vqa': 'configs/prep/vqa.json' }, plugins: [join(repoRoot, 'plugins') + '/*'] }));
  writeFileSync(join(root, 'configs', 'prep', 'config.json'), JSON.stringify(config(['report'])));
  writeFileSync(join(root, 'configs', 'prep', 'vqa.json'), JSON.stringify({ ...config(['vqa']), name: 'prep-vqa' }));
  const dims = [40, 36, 20];
  for (let n = 0; n < 3; n++) {
    const hu = new Float32Array(dims[0] * dims[1] * dims[2]).map((_, i) => -1000 + 1200 * (0.5 + 0.5 * Math.sin(0.37 * i + n)));
    await writeNifti(join(data, 'images', `s${n}.nii.gz`), makeVolume(hu, dims, { datatype: 'float32', spacing: [5, 5, 9], affine: [5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 9, 0, 0, 0, 0, 1] }));
  }
  const item = (n: number, findings: Record<string, string>, vqa: unknown[] = []) => ({ id: `s${n}`, image: `images/s${n}.nii.gz`, labels: { report: { findings }, vqa } });
  const q = { question: 'Which side?', options: { A: 'left', B: 'right', C: 'both', D: 'neither' }, answer: 'b' };
  writeFileSync(join(data, 'dataset.json'), JSON.stringify({
    training: [item(0, { chest: 'Clear lungs.', abdomen: 'A cyst in the left kidney.', pelvis: '' }, [q]), item(1, { chest: '', abdomen: 'Normal liver.', pelvis: 'Normal bladder.' })],
    validation: [item(2, { chest: 'Small right effusion.', abdomen: '', pelvis: '' }, [q, q])],
  }));
}, 120_000);

describe('llmed data prepare (report experiments)', () => {
  it('writes one sample per scan and non-empty region, images preprocessed once, and is idempotent', () => {
    const r = llmed(['data', 'prepare', 'prep'], { cwd: root, timeoutMs: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/prepared: .*5 samples from 3 images/);
    const dir = join(root, '.cache', 'prepared', 'prep');
    const doc = JSON.parse(readFileSync(join(dir, 'samples.json'), 'utf8'));
    expect(doc.samples.map((s: { id: string }) => s.id)).toEqual(['s0-chest', 's0-abdomen', 's1-abdomen', 's1-pelvis', 's2-chest']);
    const s0 = doc.samples[1];
    expect(s0).toMatchObject({ kind: 'report', region: 'abdomen', split: 'train', answer: 'A cyst in the left kidney.' });
    expect(s0.prompt).toBe('please provide a detailed caption outlining the findings in abdomen of this image.');
    expect(doc.samples[4].split).toBe('val');
    const header = JSON.parse(readFileSync(join(dir, s0.image), 'utf8'));
    expect(header.shape).toEqual([1, 32, 32, 16]); // Merlin's (C, X, Y, Z), what i3resnet152 (layout 'merlin') reads
    expect(existsSync(join(dir, header.dataFile.startsWith('/') ? header.dataFile : join(s0.image, '..', header.dataFile)))).toBe(true);
    const again = llmed(['data', 'prepare', 'prep'], { cwd: root, timeoutMs: 120_000 });
    expect(again.stdout).toMatch(/prepared data up to date/);
  });

  it('writes one VQA sample per question, the answer letter upper-cased and the choices in the prompt', () => {
    const r = llmed(['data', 'prepare', 'prep-vqa'], { cwd: root, timeoutMs: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(readFileSync(join(root, '.cache', 'prepared', 'prep-vqa', 'samples.json'), 'utf8'));
    expect(doc.samples.map((s: { id: string }) => s.id)).toEqual(['s0-q0', 's2-q0', 's2-q1']);
    expect(doc.samples[0]).toMatchObject({ kind: 'vqa', answer: 'B', options: { A: 'left', B: 'right' } });
    expect(doc.samples[0].prompt).toBe('Which side? Choices: A. left B. right C. both D. neither');
  });
});
