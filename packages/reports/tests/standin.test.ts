/**
 * The report-proxy stand-in: determinism (same seed → same manifest hash), the parser round trip
 * (fact-f1 = 1.0 on generated reports), balanced answer letters, the leakage check (passes on the output,
 * fails on injected leaks), the one-loader promise, the statement on every output, atomic output, and
 * the subject-disjoint brain version. Small crops and few samples keep it to seconds.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLlmedError } from '@llmed/core/errors';
import { axisCodes, readNifti, voxelToWorld } from '@llmed/imaging';
import {
  BRAIN_STATEMENT, checkLeakage, defaultDataDir, factF1, FACT_F1_CATEGORIES, generateReportProxy, OPTION_LETTERS, parseReport,
  QUESTION_TYPES, readReportProxy, STATEMENT, type Fact, type LeakageInput, type ReportProxy,
} from '@llmed/reports';

const DATA = defaultDataDir();
const hasCt = existsSync(path.join(DATA, 'abdomen/example_ct.nii.gz'));
const hasBrain = existsSync(path.join(DATA, 'brain/bert_aseg.nii.gz')) && existsSync(path.join(DATA, 'brain/vxm_subject_aseg.nii.gz'));
if (!hasCt) console.warn(`[reports tests] ${DATA}/abdomen not found: report-proxy generation tests are SKIPPED (set LLMED_SHARED_DATA)`);

const tmp = mkdtempSync(path.join(tmpdir(), 'llmed-report-proxy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SMALL = { count: 24, seed: 7, outShape: [24, 21, 28] as [number, number, number], dataDir: DATA, heldOutShare: 1 };
const key = (f: Fact) => JSON.stringify(Object.fromEntries(Object.entries(f).sort()));

function leakageInputs(d: ReportProxy): LeakageInput[] {
  const imageOf = new Map((d.manifest.samples as Array<{ id: string; image: string }>).map((s) => [s.id, s.image]));
  return d.scans.map((s) => ({ ...(d.truth[s.id] as unknown as LeakageInput), image: imageOf.get(s.id)! }));
}

describe.skipIf(!hasCt)('report-proxy (CT)', () => {
  let a: Awaited<ReturnType<typeof generateReportProxy>>;
  let d: ReportProxy;
  beforeAll(async () => {
    a = await generateReportProxy({ ...SMALL, out: path.join(tmp, 'a') });
    d = readReportProxy(a.out);
  });

  it('is deterministic: the same seed gives the same manifest hash and files, another seed another hash', async () => {
    const b = await generateReportProxy({ ...SMALL, out: path.join(tmp, 'b') });
    expect(b.hash).toBe(a.hash);
    for (const f of ['dataset.json', 'facts.json', 'manifest.json']) expect(readFileSync(path.join(b.out, f), 'utf8')).toBe(readFileSync(path.join(a.out, f), 'utf8'));
    const c = await generateReportProxy({ ...SMALL, count: 12, seed: 8, out: path.join(tmp, 'c') });
    expect(c.hash).not.toBe(a.hash);
  });

  it('is read by the AMOS-MM loader: one report per non-empty region, images of the requested shape', async () => {
    expect(d.scans).toHaveLength(24);
    expect(d.reports.length).toBe(a.reports);
    expect(d.vqa.length).toBe(a.questions);
    for (const r of d.reports) expect(r.answer.length).toBeGreaterThan(0);
    const img = await readNifti(d.scans[0].image);
    expect(img.dims).toEqual(SMALL.outShape);
    const counts = { train: 0, val: 0, test: 0 };
    for (const s of d.scans) counts[s.split]++;
    expect(counts).toEqual(a.counts);
    expect(counts.test).toBe(5);
  });

  it('writes RAS volumes whose painted sided findings lie on the side the facts say', async () => {
    const centroidX = (data: Float32Array, dims: readonly number[], affine: number[], label: number) => {
      const s = [0, 0, 0];
      let n = 0;
      for (let q = 0; q < data.length; q++) if (data[q] === label) { s[0] += q % dims[0]; s[1] += Math.floor(q / dims[0]) % dims[1]; s[2] += Math.floor(q / (dims[0] * dims[1])); n++; }
      return n ? voxelToWorld(affine, s[0] / n, s[1] / n, s[2] / n)[0] : NaN;
    };
    let checked = 0;
    for (const s of d.scans) {
      const findings = d.truth[s.id].findings as Array<{ kind: string; organ?: string }>;
      const sided = findings.find((f) => (f.kind === 'stone' || f.kind === 'lesion') && (f.organ === 'kidney_left' || f.organ === 'kidney_right'));
      if (!sided) continue;
      const lab = await readNifti(path.join(a.out, String(s.meta!.labels)));
      expect(axisCodes(lab.affine)).toBe('RAS');
      const findingX = centroidX(lab.data, lab.dims, lab.affine, sided.kind === 'stone' ? 230 : 200);
      const otherKidneyX = centroidX(lab.data, lab.dims, lab.affine, sided.organ === 'kidney_left' ? 2 : 3);
      if (Number.isNaN(findingX) || Number.isNaN(otherKidneyX)) continue; // too small to survive downsampling, or the other kidney is cut off
      // RAS: x grows towards the patient's right, so a left-kidney finding lies left of (below) the right kidney.
      if (sided.organ === 'kidney_left') expect(findingX).toBeLessThan(otherKidneyX);
      else expect(findingX).toBeGreaterThan(otherKidneyX);
      checked++;
    }
    expect(checked).toBeGreaterThan(0);
  });

  it('parses every generated report back into its facts: fact-f1 = 1.0 in every category that occurs', () => {
    const samples = d.scans.map((s) => ({ reference: Object.values(d.facts[s.id]).flat(), candidate: Object.values(s.findings).join(' ') }));
    const f1 = factF1(samples);
    expect(f1.unparsed).toBe(0);
    expect(f1.overall.f1).toBe(1);
    const occurring = FACT_F1_CATEGORIES.filter((c) => f1.perCategory[c].tp > 0);
    expect(occurring).toEqual(expect.arrayContaining(['lesion', 'lesion-size', 'phase', 'normal']));
    for (const c of FACT_F1_CATEGORIES) if (f1.perCategory[c].tp + f1.perCategory[c].fn > 0) expect(f1.perCategory[c].f1).toBe(1);
    // Region by region, the parsed facts are exactly the sidecar's.
    for (const s of d.scans) for (const [region, text] of Object.entries(s.findings)) {
      expect(parseReport(text).facts.map(key).sort()).toEqual((d.facts[s.id][region] ?? []).map(key).sort());
    }
  });

  it('balances answer letters per split and question type, with one correct, distinct option each', () => {
    for (const split of ['train', 'val', 'test'] as const) for (const type of QUESTION_TYPES) {
      const qs = d.vqa.filter((q) => q.split === split && q.type === type);
      const n = OPTION_LETTERS.map((l) => qs.filter((q) => q.answer === l).length);
      expect(Math.max(...n) - Math.min(...n), `${split}/${type}: ${n.join(',')}`).toBeLessThanOrEqual(1);
    }
    for (const q of d.vqa) expect(new Set(Object.values(q.options)).size).toBe(4);
    expect(new Set(d.vqa.map((q) => q.type))).toEqual(new Set(QUESTION_TYPES));
  });

  it('answers questions from the facts', () => {
    const phaseText = { 'non-contrast': 'non-contrast', arterial: 'arterial', 'portal-venous': 'portal venous' };
    for (const q of d.vqa) {
      const facts = Object.values(d.facts[q.scanId]).flat();
      if (q.type === 'phase') expect(q.options[q.answer]).toBe(phaseText[(d.truth[q.scanId].phase as keyof typeof phaseText)]);
      if (q.type === 'count') {
        const l = facts.find((f) => f.category === 'lesion') as Extract<Fact, { category: 'lesion' }>;
        expect(q.options[q.answer]).toBe(['one', 'two', 'three'][l.count - 1]);
      }
    }
  });

  it('keeps test apart (lesion seeds, held-out combinations, crop blocks) and the leakage check catches leaks', () => {
    expect((d.manifest.leakage as { ok: boolean }).ok).toBe(true);
    const inputs = leakageInputs(d);
    const design = { heldOut: ['lesion:spleen', 'stone:gallbladder'], blockGap: 6 };
    expect(checkLeakage(inputs, design).problems).toEqual([]);
    const test = inputs.filter((s) => s.split === 'test'), train = inputs.filter((s) => s.split === 'train');
    expect(test.some((s) => s.combos.some((c) => design.heldOut.includes(c)))).toBe(true);
    expect(train.every((s) => s.lesionSeeds.every((x) => x % 3 === 0)) && test.every((s) => s.lesionSeeds.every((x) => x % 3 === 2))).toBe(true);
    // Injected leaks: a test lesion seed reused in training, a held-out combination in training, a test crop next to a training one.
    const seeded = test.find((s) => s.lesionSeeds.length)!;
    const leak1 = inputs.map((s) => (s.id === train[0].id ? { ...s, lesionSeeds: [seeded.lesionSeeds[0]] } : s));
    expect(checkLeakage(leak1, design).problems.join()).toMatch(/lesion seeds .* in test and train/);
    const leak2 = inputs.map((s) => (s.id === train[0].id ? { ...s, combos: ['stone:gallbladder'] } : s));
    expect(checkLeakage(leak2, design).problems.join()).toMatch(/held-out combinations appear outside test/);
    const leak3 = inputs.map((s) => (s.id === test[0].id ? { ...s, crop: { origin: train[0].crop.origin } } : s));
    expect(checkLeakage(leak3, design).problems.join()).toMatch(/test crop origin is 0 voxels from a training one/);
    const leak4 = inputs.map((s) => (s.id === test[0].id ? { ...s, image: train[0].image } : s));
    expect(checkLeakage(leak4, design).problems.join()).toMatch(/same image bytes/);
  });

  it('says what it is on every output', () => {
    expect(d.manifest.statement).toBe(STATEMENT);
    expect(readFileSync(path.join(a.out, 'README.md'), 'utf8')).toContain("pseudo-subjects of one CT, not radiologists' reports");
    const dataset = JSON.parse(readFileSync(path.join(a.out, 'dataset.json'), 'utf8'));
    expect(dataset.description).toBe(STATEMENT);
    expect(JSON.parse(readFileSync(path.join(a.out, 'facts.json'), 'utf8')).statement).toBe(STATEMENT);
    for (const s of d.scans) expect(s.meta?.source).toBe(STATEMENT);
  });

  it('writes atomically: refuses to overwrite without force, leaves nothing behind on failure', async () => {
    const before = readFileSync(path.join(a.out, 'manifest.json'), 'utf8');
    let err: unknown;
    try { await generateReportProxy({ ...SMALL, out: a.out }); } catch (e) { err = e; }
    expect(isLlmedError(err) && (err as { kind: string }).kind).toBe('usage');
    err = undefined;
    try { await generateReportProxy({ ...SMALL, out: a.out, force: true, dataDir: path.join(tmp, 'no-data') }); } catch (e) { err = e; }
    expect(isLlmedError(err) && (err as { kind: string }).kind).toBe('data');
    expect(readFileSync(path.join(a.out, 'manifest.json'), 'utf8')).toBe(before);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-') || f.includes('.old-'))).toEqual([]);
  });
});

describe.skipIf(!hasBrain)('report-proxy-brain (subject-disjoint)', () => {
  it('trains on one aseg-labelled brain and tests on the other, with the same grammar and checks', async () => {
    const r = await generateReportProxy({ anatomy: 'brain', count: 10, seed: 3, outShape: [20, 24, 20], dataDir: DATA, out: path.join(tmp, 'brain') });
    const d = readReportProxy(r.out);
    expect(d.manifest.statement).toBe(BRAIN_STATEMENT);
    const subjects = (split: string) => new Set(d.scans.filter((s) => s.split === split).map((s) => d.truth[s.id].subject));
    expect(subjects('test')).toEqual(new Set(['bert']));
    expect([...subjects('train'), ...subjects('val')].every((s) => s === 'vxm')).toBe(true);
    expect(d.reports.every((x) => x.region === 'brain')).toBe(true);
    const f1 = factF1(d.scans.map((s) => ({ reference: d.facts[s.id].brain, candidate: s.findings.brain })));
    expect(f1.overall.f1).toBe(1);
    expect(checkLeakage(leakageInputs(d), { heldOut: ['lesion:thalamus_left'], subjects: { train: ['vxm'], test: ['bert'] } }).ok).toBe(true);
    const moved = leakageInputs(d).map((s) => (s.split === 'train' ? { ...s, subject: 'bert' } : s));
    expect(checkLeakage(moved, { heldOut: [], subjects: { train: ['vxm'], test: ['bert'] } }).problems.join()).toMatch(/subject of the other side/);
  });
});
