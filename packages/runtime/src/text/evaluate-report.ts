/**
 * Evaluation of a report export on a prepared report dataset, natively in Node (no Python): every test
 * sample's report is generated (greedy unless the export says otherwise) and every multiple-choice item
 * answered by its option letters' scores, then scored by the text Metric plugins asked for, per region and
 * overall, each with a seeded 95 % bootstrap interval. Writes, under a staging name then published:
 *
 *   table.md / table.json     one row per region (and "all"), n, every metric's value and interval;
 *                             VQA accuracy with its chance level
 *   samples.json              per sample: prompt, reference, generated text, per-sample scores
 *   samples/<id>.md + .png    a page per sample: the CT's three middle slices, prompt, reference, generated
 *                             text and what `describe` (the facts parser, for the stand-in) reads in each
 *   samples/<id>.nii.gz       the prepared CT the model saw (for `llmed view`)
 *
 * The samples and images are the prepared folder's (samples.json + prepared volumes, the trainer's input):
 * the export's vision graph sees exactly what training saw.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { LlmedError, publishFolder, recoverFolder, stagingFolder, writeFileAtomic, type TextMetricResult, type TextMetricRuntime, type TextSample } from '@llmed/core';
import { readPreparedVolume, writeNifti, type Volume } from '@llmed/imaging';
import { bootstrapMean, metricInterval, type Interval } from '@llmed/text';
import { Canvas, type Rgb } from '../pictures/canvas.ts';
import { encodePng } from '../pictures/png.ts';
import { extractSlice, intensityWindow, windowed, type Axis } from '../pictures/slices.ts';
import { ReportGenerator } from './report.ts';

export interface PreparedSample {
  id: string;
  /** The scan the sample comes from (absent in older samples.json: the id is `<scan>-<region>`). */
  scanId?: string;
  image: string;
  region?: string;
  kind: 'report' | 'vqa';
  prompt: string;
  answer: string;
  options?: Record<string, string>;
  split: string;
}

export interface TextMetricPlugin { id: string; runtime: TextMetricRuntime<any>; options: object }

export interface ReportEvalOptions {
  exportDir: string;
  preparedDir: string;
  out: string;
  split?: string;
  /** At most this many samples of each kind (default all). */
  limit?: number;
  threads?: number;
  metrics: TextMetricPlugin[];
  workspaceRoot: string;
  /** Text of the facts a report states, for the per-sample pages (the stand-in's parser); optional. */
  describe?: (text: string) => string[];
  /** Per-sample progress. */
  onProgress?: (done: number, total: number, id: string) => void;
  /** Draw the per-sample pages' slices (default true). */
  pictures?: boolean;
  /**
   * Which sample's image a sample is generated from (default: its own). The shuffled-image baseline gives
   * each sample another sample's image: a model whose text does not depend on the image scores the same.
   */
  imageFrom?: (sample: PreparedSample, index: number, samples: readonly PreparedSample[]) => PreparedSample;
}

export interface RegionRow { region: string; n: number; metrics: Record<string, { value: number; interval?: Interval; outputs: Record<string, number>; skipped?: string }> }
export interface ReportEvaluation { out: string; rows: RegionRow[]; vqa?: { n: number; accuracy: number; interval: Interval; chance: number }; markdown: string; samples: GeneratedSample[] }
export interface GeneratedSample extends PreparedSample { generated: string; scores: Record<string, number>; finish?: string }

function readSamples(preparedDir: string): PreparedSample[] {
  const file = join(preparedDir, 'samples.json');
  if (!existsSync(file)) throw new LlmedError('data', `${file} is missing: the dataset is not prepared`, { where: preparedDir, hint: 'run `llmed data prepare <experiment>`' });
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { samples?: PreparedSample[] } | PreparedSample[];
  return Array.isArray(doc) ? doc : (doc.samples ?? []);
}

async function imageOf(preparedDir: string, sample: PreparedSample): Promise<{ data: Float32Array; dims: readonly number[]; volume: Volume }> {
  const header = resolve(preparedDir, sample.image);
  if (!header.startsWith(resolve(preparedDir))) throw new LlmedError('data', `sample ${sample.id} names an image outside the prepared folder`, { where: join(preparedDir, 'samples.json') });
  const { volume } = await readPreparedVolume(dirname(header), header.slice(dirname(header).length + 1).replace(/\.json$/, ''));
  return { data: volume.data as Float32Array, dims: volume.dims, volume };
}

/** The three middle slices of a volume side by side (grey, 1st–99th percentile window), as a PNG. */
export function middleSlices(data: ArrayLike<number>, dims: readonly number[], zoom = 3): Buffer {
  const [lo, hi] = intensityWindow(data);
  const slices = ([0, 1, 2] as Axis[]).map((axis) => extractSlice(data, dims, axis, Math.floor(dims[axis] / 2)));
  const gap = 4;
  const width = slices.reduce((w, s) => w + s.width * zoom + gap, gap);
  const height = Math.max(...slices.map((s) => s.height * zoom)) + 2 * gap;
  const canvas = new Canvas(width, height, [18, 18, 18]);
  let x0 = gap;
  for (const s of slices) {
    for (let y = 0; y < s.height; y++) for (let x = 0; x < s.width; x++) {
      const g = Math.round(255 * windowed(s.data[x + s.width * y], lo, hi));
      const c: Rgb = [g, g, g];
      // image rows top-down with the second in-plane axis pointing up
      canvas.fillRect(x0 + x * zoom, gap + (s.height - 1 - y) * zoom, zoom, zoom, c);
    }
    x0 += s.width * zoom + gap;
  }
  return encodePng({ width: canvas.width, height: canvas.height, channels: 3, data: canvas.data });
}

const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : 'n/a');

/**
 * Score generated samples (a model's, or a baseline's candidates) by text metrics per region and overall,
 * each with a seeded 95 % bootstrap interval, and VQA items by accuracy with the chance level. Per-sample
 * scores of the overall row are written into each sample's `scores`.
 */
export async function scoreReportSamples(generated: GeneratedSample[], metrics: TextMetricPlugin[], workspaceRoot: string): Promise<{ rows: RegionRow[]; vqa?: ReportEvaluation['vqa'] }> {
  // Text metrics per region and overall.
  const genReports = generated.filter((g) => g.kind === 'report');
  const regions = [...new Set(genReports.map((g) => g.region ?? 'all'))].sort();
  const rows: RegionRow[] = [];
  for (const region of [...regions, 'all']) {
    const group = genReports.filter((g) => region === 'all' || (g.region ?? 'all') === region);
    if (group.length === 0) continue;
    const input = { samples: group.map((g): TextSample => ({ id: g.id, candidate: g.generated, references: [g.answer] })) };
    const row: RegionRow = { region, n: group.length, metrics: {} };
    for (const m of metrics) {
      const r: TextMetricResult = await m.runtime.computeText(input, m.options, { workspaceRoot });
      if (r.skipped) { row.metrics[m.id] = { value: NaN, outputs: {}, skipped: r.skipped }; continue; }
      const interval = m.runtime.aggregate === 'corpus' || r.perSample.every(Number.isFinite) ? metricInterval(m.runtime, input, r, m.options, { seed: 0 }) : undefined;
      row.metrics[m.id] = { value: r.value, interval, outputs: r.outputs };
      if (region === 'all') group.forEach((g, i) => { g.scores[m.id] = r.perSample[i]; });
    }
    rows.push(row);
  }
  let vqaRow: ReportEvaluation['vqa'];
  const genVqa = generated.filter((g) => g.kind === 'vqa');
  if (genVqa.length) {
    const hits = genVqa.map((g) => g.scores.correct);
    const mean = hits.reduce((a, b) => a + b, 0) / hits.length;
    const chance = genVqa.reduce((a, g) => a + 1 / Math.max(1, Object.keys(g.options ?? {}).length), 0) / genVqa.length;
    vqaRow = { n: genVqa.length, accuracy: mean, interval: { ...bootstrapMean(hits, { seed: 0 }), value: mean }, chance };
  }

  return { rows, vqa: vqaRow };
}

export async function evaluateReportExport(o: ReportEvalOptions): Promise<ReportEvaluation> {
  const split = o.split ?? 'test';
  const all = readSamples(o.preparedDir).filter((s) => s.split === split);
  const reports = all.filter((s) => s.kind === 'report').slice(0, o.limit ?? Infinity);
  const vqa = all.filter((s) => s.kind === 'vqa').slice(0, o.limit ?? Infinity);
  if (reports.length + vqa.length === 0) throw new LlmedError('data', `no ${split} samples in ${join(o.preparedDir, 'samples.json')}`, { where: o.preparedDir });
  const generator = await ReportGenerator.load(o.exportDir, { threads: o.threads });
  const generated: GeneratedSample[] = [];
  const images = new Map<string, { data: Float32Array; dims: readonly number[]; volume: Volume }>();
  try {
    let done = 0;
    for (const [n, s] of reports.entries()) {
      const source = o.imageFrom?.(s, n, reports) ?? s;
      const img = images.get(source.image) ?? await imageOf(o.preparedDir, source);
      images.set(source.image, img);
      const r = await generator.report(img.data, { region: s.region ?? 'abdomen' });
      generated.push({ ...s, generated: r.text, finish: r.finish, scores: {} });
      o.onProgress?.(++done, reports.length + vqa.length, s.id);
    }
    for (const [n, s] of vqa.entries()) {
      const source = o.imageFrom?.(s, n, vqa) ?? s;
      const img = images.get(source.image) ?? await imageOf(o.preparedDir, source);
      images.set(source.image, img);
      const question = s.prompt.split(' Choices: ')[0];
      const r = await generator.ask(img.data, question, s.options ?? {});
      generated.push({ ...s, generated: r.answer, scores: { correct: r.answer === s.answer ? 1 : 0 } });
      o.onProgress?.(++done, reports.length + vqa.length, s.id);
    }
  } finally {
    await generator.release();
  }

  const { rows, vqa: vqaRow } = await scoreReportSamples(generated, o.metrics, o.workspaceRoot);
  const genReports = generated.filter((g) => g.kind === 'report');
  const genVqa = generated.filter((g) => g.kind === 'vqa');
  const metricIds = o.metrics.map((m) => m.id);
  const lines = [
    `# Report evaluation (${split} split; ${genReports.length} reports, ${genVqa.length} questions)`,
    '',
    `Export: ${o.exportDir}; generation in Node (onnxruntime-node), no Python. Values with 95 % seeded bootstrap intervals.`,
    '',
    `| region | n | ${metricIds.join(' | ')} |`,
    `|---|---|${metricIds.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.region} | ${r.n} | ${metricIds.map((id) => {
      const m = r.metrics[id];
      if (!m) return '';
      if (m.skipped) return `skipped: ${m.skipped}`;
      return m.interval ? `${fmt(m.value)} [${fmt(m.interval.lo)}, ${fmt(m.interval.hi)}]` : fmt(m.value);
    }).join(' | ')} |`),
  ];
  if (vqaRow) lines.push('', `VQA accuracy (option-letter scores): ${fmt(vqaRow.accuracy)} [${fmt(vqaRow.interval.lo)}, ${fmt(vqaRow.interval.hi)}] on ${vqaRow.n} questions; chance ${fmt(vqaRow.chance)}.`);
  const markdown = `${lines.join('\n')}\n`;

  const out = resolve(o.out);
  recoverFolder(out);
  const staging = stagingFolder(out);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, 'samples'), { recursive: true });
  try {
    await writeFileAtomic(join(staging, 'table.md'), markdown);
    await writeFileAtomic(join(staging, 'table.json'), `${JSON.stringify({ split, rows, vqa: vqaRow }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1)}\n`);
    await writeFileAtomic(join(staging, 'samples.json'), `${JSON.stringify(generated, null, 1)}\n`);
    for (const g of generated) {
      const page = [`# ${g.id} (${g.kind}${g.region ? `, ${g.region}` : ''})`, ''];
      if (o.pictures !== false) {
        const img = images.get(g.image)!;
        await writeFileAtomic(join(staging, 'samples', `${g.id}.png`), middleSlices(img.data, img.dims));
        // the prepared CT as NIfTI (its prepared affine), for `llmed view` beside the texts
        await writeNifti(join(staging, 'samples', `${g.id}.nii.gz`), img.volume);
        page.push(`![the prepared CT, three middle slices](${g.id}.png)`, '');
      }
      page.push(`**Prompt:** ${g.prompt}`, '', `**Reference:** ${g.answer}`, '', `**Generated:** ${g.generated}`, '');
      if (o.describe && g.kind === 'report') {
        page.push('| facts in the reference | facts in the generated text |', '|---|---|');
        const a = o.describe(g.answer), b = o.describe(g.generated);
        for (let i = 0; i < Math.max(a.length, b.length); i++) page.push(`| ${a[i] ?? ''} | ${b[i] ?? ''} |`);
        page.push('');
      }
      const scores = Object.entries(g.scores).map(([k, v]) => `${k} ${fmt(v)}`).join(', ');
      if (scores) page.push(`Scores: ${scores}`, '');
      await writeFileAtomic(join(staging, 'samples', `${g.id}.md`), `${page.join('\n')}\n`);
    }
    publishFolder(staging, out);
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  }
  return { out, rows, vqa: vqaRow, markdown, samples: generated };
}
