/**
 * Test fixture for the viewer's report layout: a report evaluation folder laid out as
 * `evaluateReportExport` writes it (packages/runtime/src/text/evaluate-report.ts) — samples.json, table.json,
 * table.md and samples/<id>.md|.nii.gz — without running a model: the texts are fixed, the CTs are small
 * synthetic abdomens written by @llmed/imaging's writeNifti, so the test needs no export and no Python.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeVolume, writeNifti } from '@llmed/imaging';
import type { GeneratedSample } from '@llmed/runtime';

/**
 * A synthetic CT in [0, 1]: an elliptic body with a smooth texture (many grey levels, so a drawn slice is
 * told apart from a flat failed canvas), a bright "spine" column and a darker round "organ" whose place
 * depends on `seed`, over an empty background.
 */
export function phantomCt(dims: readonly [number, number, number], seed: number): Float32Array {
  const [nx, ny, nz] = dims;
  const data = new Float32Array(nx * ny * nz);
  const organ = [nx * (0.35 + 0.1 * seed), ny * 0.45, nz * 0.5];
  for (let k = 0, q = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, q++) {
        const u = (i - nx / 2) / (nx * 0.45);
        const v = (j - ny / 2) / (ny * 0.38);
        if (u * u + v * v > 1) continue;
        let value = 0.45 + 0.12 * Math.sin(i / 2.3 + seed) * Math.cos(j / 3.1) + 0.05 * Math.sin(k / 1.7);
        const d = Math.hypot(i - organ[0], j - organ[1], (k - organ[2]) * 1.5);
        if (d < Math.min(nx, ny) * 0.16) value = 0.75 + 0.002 * d;
        if (Math.hypot(i - nx / 2, j - ny * 0.78) < Math.min(nx, ny) * 0.07) value = 1;
        data[q] = value;
      }
    }
  }
  return data;
}

export interface ReportFixture {
  samples: GeneratedSample[];
  /** Grid of each sample's CT (absent: no CT written for it). */
  dims: Record<string, readonly [number, number, number]>;
}

/** Three samples: two reports (abdomen, chest) from one scan and a multiple-choice question on another. */
export function reportSamples(): GeneratedSample[] {
  return [
    {
      id: 'amos_0001-abdomen', scanId: 'amos_0001', image: 'images/amos_0001.f32', region: 'abdomen', kind: 'report', split: 'test',
      prompt: 'please provide a detailed caption outlining the findings in abdomen of this image.',
      answer: 'The liver is enlarged with a hypodense lesion in segment VI. No ascites.',
      generated: 'The liver is enlarged. A small hypodense lesion is seen. No free fluid.',
      finish: 'stop', scores: { bleu: 0.31, 'rouge-l': 0.52 },
    },
    {
      id: 'amos_0001-chest', scanId: 'amos_0001', image: 'images/amos_0001.f32', region: 'chest', kind: 'report', split: 'test',
      prompt: 'please provide a detailed caption outlining the findings in chest of this image.',
      answer: 'Small right pleural effusion. Lungs otherwise clear.',
      generated: 'Lungs are clear. No pleural effusion',
      // NaN per-sample scores are written as null (JSON has no NaN): the page must cope.
      finish: 'length', scores: { bleu: null as unknown as number, 'rouge-l': 0.28 },
    },
    {
      id: 'amos_0002-q0', scanId: 'amos_0002', image: 'images/amos_0002.f32', kind: 'vqa', split: 'test',
      prompt: 'Is there a pleural effusion? Choices: A. yes, left B. yes, right C. bilateral D. no',
      options: { A: 'yes, left', B: 'yes, right', C: 'bilateral', D: 'no' },
      answer: 'B', generated: 'D', scores: { correct: 0 },
    },
  ];
}

/**
 * Write a report evaluation folder into `dir` (the folder `llmed evaluate <report run>` writes to
 * `<run>/eval`). `withoutCt` lists samples whose CT is not written (as with pictures: false).
 */
export async function writeReportEval(dir: string, opts: { withoutCt?: string[] } = {}): Promise<ReportFixture> {
  const samples = reportSamples();
  mkdirSync(join(dir, 'samples'), { recursive: true });
  const grids: Record<string, readonly [number, number, number]> = { amos_0001: [48, 40, 24], amos_0002: [40, 44, 20] };
  const dims: ReportFixture['dims'] = {};
  for (const [n, s] of samples.entries()) {
    if (opts.withoutCt?.includes(s.id)) continue;
    const grid = grids[s.scanId!];
    await writeNifti(join(dir, 'samples', `${s.id}.nii.gz`), makeVolume(phantomCt(grid, n), grid, { spacing: [1.5, 1.5, 3] }), { datatype: 'float32' });
    dims[s.id] = grid;
    writeFileSync(join(dir, 'samples', `${s.id}.md`), `# ${s.id}\n\n**Reference:** ${s.answer}\n\n**Generated:** ${s.generated}\n`);
  }
  writeFileSync(join(dir, 'samples.json'), `${JSON.stringify(samples, null, 1)}\n`);
  const table = {
    split: 'test',
    rows: [
      { region: 'abdomen', n: 1, metrics: { bleu: { value: 0.31, outputs: {} }, 'rouge-l': { value: 0.52, interval: { lo: 0.52, hi: 0.52, value: 0.52 }, outputs: {} } } },
      { region: 'chest', n: 1, metrics: { bleu: { value: 0.12, outputs: {} }, 'rouge-l': { value: 0.28, interval: { lo: 0.28, hi: 0.28, value: 0.28 }, outputs: {} } } },
      { region: 'all', n: 2, metrics: { bleu: { value: 0.2, outputs: {} }, 'rouge-l': { value: 0.4, interval: { lo: 0.28, hi: 0.52, value: 0.4 }, outputs: {} } } },
    ],
    vqa: { n: 1, accuracy: 0, interval: { lo: 0, hi: 0, value: 0 }, chance: 0.25 },
  };
  writeFileSync(join(dir, 'table.json'), `${JSON.stringify(table, null, 1)}\n`);
  writeFileSync(join(dir, 'table.md'), '# Report evaluation (test split; 2 reports, 1 questions)\n');
  return { samples, dims };
}
