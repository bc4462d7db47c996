/**
 * Report generation in Node from a report export, against torch: a tiny vision model + tiny LLaMA trained so
 * that the report and the VQA answer depend on the image (bridge/python/tests/tiny_report_export.py), exported
 * by the real exporter (llmed.export_report, parity-gated).
 *
 * - the generated report of each image is torch's (token ids and text), streamed as it grows;
 * - the option-letter scores of a multiple-choice question are torch's, and the answer follows the image;
 * - a tampered or truncated file, or a registration export, is refused with one error naming the file;
 * - `llmed report` / `llmed ask` on the NIfTI scans, with Python hidden (no PYTHON_BIN, no venv on PATH),
 *   preprocess by the export's pipeline (M3D), stream the report and write report.json / answer.json.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writePreparedVolume } from '@llmed/imaging';
import { descriptor as rougeL, runtime as rougeLRuntime } from '@llmed/plugin-rouge-l';
import { pluginOptions } from '@llmed/core';
import { evaluateReportExport, openReportExport, ReportGenerator } from '../src/index.ts';

const WORKSPACE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = join(WORKSPACE, 'packages', 'cli', 'bin', 'llmed.mjs');
const VENV_PYTHON = join(WORKSPACE, '.venv', 'bin', 'python');
const haveVenv = existsSync(VENV_PYTHON);
if (!haveVenv) console.warn(`[report generation tests] skipped: no Python environment at ${VENV_PYTHON} to build the tiny export (run npm run setup)`);

interface Reference {
  reports: Record<string, { ids: number[]; text: string }>;
  vqa: Record<string, Record<string, number>>;
  question: string;
  choices: Record<string, string>;
}

let tmp: string;
let exportDir: string;
let ref: Reference;
let generator: ReportGenerator;
const image = (side: string) => {
  const b = readFileSync(join(tmp, 'images', `${side}.f32`));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

describe.skipIf(!haveVenv)('report generation from a report export', () => {
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'llmed-report-'));
    const built = spawnSync(VENV_PYTHON, ['-m', 'tests.tiny_report_export', tmp], { cwd: join(WORKSPACE, 'bridge', 'python'), encoding: 'utf8', timeout: 600_000 });
    if (built.status !== 0) throw new Error(`building the tiny report export failed:\n${built.stderr}`);
    exportDir = JSON.parse(built.stdout.trim().split('\n').at(-1)!).export as string;
    ref = JSON.parse(readFileSync(join(tmp, 'reference.json'), 'utf8')) as Reference;
    generator = await ReportGenerator.load(exportDir, { threads: 1 });
  }, 600_000);
  afterAll(async () => {
    await generator?.release();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("generates torch's report for each image, streaming it", async () => {
    for (const side of ['left', 'right']) {
      let streamed = '';
      const r = await generator.report(image(side), { region: 'abdomen', onText: (d) => { streamed += d; } });
      expect(r.ids, side).toEqual(ref.reports[side].ids);
      expect(r.text).toBe(ref.reports[side].text);
      expect(streamed).toBe(r.text);
      expect(r.finish).toBe('stop');
    }
    // the image matters: the two reports differ
    expect(ref.reports.left.text).not.toBe(ref.reports.right.text);
  });

  it("scores the option letters as torch does, and the answer follows the image", async () => {
    for (const [side, want] of [['left', 'A'], ['right', 'B']] as const) {
      const r = await generator.ask(image(side), ref.question, ref.choices);
      for (const k of Object.keys(ref.choices)) expect(r.scores[k]).toBeCloseTo(ref.vqa[side][k], 3);
      expect(r.answer).toBe(want);
    }
  });

  it('refuses a wrong-sized image, a missing prompt field and an unknown template', async () => {
    await expect(generator.imageTokens(new Float32Array(7))).rejects.toThrow(/this model takes 1×1×8×16×16/);
    expect(() => generator.promptParts('summary', new Float32Array(0), {})).toThrow(/no 'summary' prompt/);
    expect(() => generator.promptParts('report', new Float32Array(0), {})).toThrow(/needs a value for \{region\}/);
  });

  it('refuses a tampered or truncated export, naming the file', async () => {
    const copy = join(tmp, 'tampered');
    cpSync(exportDir, copy, { recursive: true });
    appendFileSync(join(copy, 'vision.onnx'), Buffer.from([0]));
    await expect(openReportExport(copy)).rejects.toThrow(/vision\.onnx is \d+ bytes; the manifest says/);
    const manifest = JSON.parse(readFileSync(join(copy, 'manifest.json'), 'utf8'));
    manifest.files['vision.onnx'].bytes += 1;
    writeFileSync(join(copy, 'manifest.json'), JSON.stringify(manifest));
    await expect(openReportExport(copy)).rejects.toThrow(/vision\.onnx does not match its SHA-256/);
    writeFileSync(join(copy, 'manifest.json'), JSON.stringify({ ...manifest, kind: undefined }));
    await expect(openReportExport(copy)).rejects.toThrow(/not a report generator/);
  });

  it('llmed report and llmed ask run on a NIfTI scan with Python out of reach', () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PYTHON_BIN: join(tmp, 'no-python-here', 'python') };
    env.PATH = (env.PATH ?? '').split(':').filter((p) => !p.includes('.venv')).join(':');
    delete env.VIRTUAL_ENV;
    const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: tmp, env, encoding: 'utf8', timeout: 120_000 });
    for (const side of ['left', 'right']) {
      const r = run(['report', '--model', exportDir, '--image', join(tmp, 'images', `${side}.nii.gz`), '--region', 'abdomen', '--out', join(tmp, `${side}.json`), '--threads', '1']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(ref.reports[side].text.trim());
      const written = JSON.parse(readFileSync(join(tmp, `${side}.json`), 'utf8'));
      expect(written.report).toBe(ref.reports[side].text);
      expect(written.finish).toBe('stop');
      expect(written.preprocessing.join(' ')).toMatch(/min-max/);
    }
    const choices = Object.entries(ref.choices).map(([k, v]) => `${k}=${v}`).join(',');
    const a = run(['ask', '--model', exportDir, '--image', join(tmp, 'images', 'right.nii.gz'), '--question', ref.question, '--choices', choices, '--out', join(tmp, 'answer.json'), '--json']);
    expect(a.status, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout).answer).toBe('B');
    const bad = run(['ask', '--model', exportDir, '--image', join(tmp, 'images', 'right.nii.gz'), '--question', 'q', '--choices', 'A=x,A=y']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/choice A is given twice/);
    const noFile = run(['report', '--model', exportDir, '--image', join(tmp, 'nope.nii.gz')]);
    expect(noFile.stderr).toMatch(/no such file/);
  }, 240_000);

  it('evaluates the export on a prepared folder: per-region table, pages, and the shuffled-image baseline scores lower', async () => {
    const prepared = join(tmp, 'prepared');
    const samples = [];
    for (const side of ['left', 'right']) {
      // the tensor (D, H, W) = (8, 16, 16) is a volume with dims [16, 16, 8] in llmed's i-fastest layout
      await writePreparedVolume(join(prepared, 'volumes'), side, { data: image(side), dims: [16, 16, 8], components: 1, spacing: [1, 1, 1], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], datatype: 'float32' }, { source: join(tmp, 'images', `${side}.nii.gz`) });
      samples.push({ id: `${side}-abdomen`, image: `volumes/${side}.json`, region: 'abdomen', kind: 'report', prompt: 'p', answer: ref.reports[side].text, split: 'test' });
    }
    writeFileSync(join(prepared, 'samples.json'), JSON.stringify({ samples }));
    const metrics = [{ id: 'rouge-l', runtime: rougeLRuntime, options: pluginOptions(rougeL, {}, 'rouge-l') }];
    const own = await evaluateReportExport({ exportDir, preparedDir: prepared, out: join(tmp, 'eval'), metrics, workspaceRoot: WORKSPACE, threads: 1 });
    expect(own.rows.map((r) => r.region)).toEqual(['abdomen', 'all']);
    expect(own.rows[1].metrics['rouge-l'].value).toBeCloseTo(1, 12);
    for (const f of ['table.md', 'table.json', 'samples.json', 'samples/left-abdomen.md', 'samples/left-abdomen.png', 'samples/left-abdomen.nii.gz']) expect(existsSync(join(tmp, 'eval', f)), f).toBe(true);
    expect(readFileSync(join(tmp, 'eval', 'samples', 'right-abdomen.md'), 'utf8')).toContain(ref.reports.right.text.trim());
    const shuffled = await evaluateReportExport({ exportDir, preparedDir: prepared, out: join(tmp, 'eval-shuffled'), metrics, workspaceRoot: WORKSPACE, threads: 1, imageFrom: (_s, i, xs) => xs[(i + 1) % xs.length] });
    expect(shuffled.rows[1].metrics['rouge-l'].value).toBeLessThan(0.8);
  }, 120_000);
});
