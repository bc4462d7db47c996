/**
 * The report-proxy stand-in: pseudo-subjects cut from the one real CT here (or from the aseg-labelled
 * brains, for the subject-disjoint test), with synthetic findings of known truth, per-region findings
 * written from the facts by the grammar of facts.ts, multiple-choice questions, and a hashed split
 * manifest. Output is in the AMOS-MM layout `readAmosMM` reads (plus `facts.json`), so real and stand-in
 * data go through one loader.
 *
 * Deterministic: every random choice comes from a stream named by (seed, what, index); no clock, no
 * Math.random; the manifest hash covers the config, every report, question and fact, and the SHA-256 of
 * every image's uncompressed NIfTI bytes (gzip output is not hashed: it may differ between zlib builds).
 *
 * Test samples are kept apart from training ones three ways (and `checkLeakage` verifies all of them):
 * lesion seeds (each lesion's shape, texture and placement come from a seed; seeds are ≡ 0, 1, 2 mod 3 for
 * train, val, test), held-out organ × finding combinations (only test samples have them), and crop blocks
 * (CT: test crops start in a band of x origins at least `blockGap` voxels from every training crop's
 * origin; brain: test subjects are not training subjects).
 */
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { LlmedError, dataError } from '@llmed/core/errors';
import {
  encodeNifti, readNifti, reorientToCanonical, resampleToShape, resampleToSpacing, sha256File, toLabelMap, withData, asFloat32,
  type Vec3, type Volume,
} from '@llmed/imaging';
import type { Split, VqaItem } from '../amos.ts';
import { extractBox } from '../preprocess.ts';
import { BRAIN_ANATOMY, CT_ANATOMY, organByKey, type Anatomy, type FindingKind, type Side } from './anatomy.ts';
import { PHASES, writeFact, type Density, type Fact, type Phase } from './facts.ts';
import { balanceLetters, draftQuestions, type DraftQuestion } from './mcq.ts';
import { Rng, seedFrom } from './rng.ts';
import { augmentIntensity, enhance, enlarge, meanAt, organIndices, paintBlob, paintEffusion, EFFUSION_LABEL, LESION_LABEL, STONE_LABEL, type Crop } from './synth.ts';

export const STATEMENT = "templated findings from segmentations of real scans — pseudo-subjects of one CT, not radiologists' reports";
export const BRAIN_STATEMENT = "templated findings from segmentations of real scans — pseudo-subjects of two brain MRIs, not radiologists' reports";
export const FORMAT = 'llmed-report-proxy-v1';

export interface ReportProxyOptions {
  anatomy?: 'ct' | 'brain';
  /** Output folder (built under a temporary name, renamed when complete). */
  out: string;
  count?: number;
  seed?: number;
  /** Source-voxel crop size (CT; brain: margin box is the brain's bounding box). */
  cropSize?: Vec3;
  /** Written volume shape. */
  outShape?: Vec3;
  valFraction?: number;
  testFraction?: number;
  /** `finding:organ` combinations that only test samples have. */
  heldOut?: string[];
  /** Share of test samples given a held-out combination. */
  heldOutShare?: number;
  /** CT: least distance (voxels, along x) between a test crop origin and any training crop origin. */
  blockGap?: number;
  /** Share of an organ's voxels a crop must hold for the organ to be reported. */
  visibleFraction?: number;
  /** Folder holding abdomen/ and brain/ (default ../shared/data from the repository root). */
  dataDir?: string;
  /** Brain: subjects for training/validation and for test. */
  brainTrain?: string[];
  brainTest?: string[];
  force?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULTS = {
  ct: { count: 240, cropSize: [96, 84, 112] as Vec3, outShape: [48, 42, 56] as Vec3, heldOut: ['lesion:spleen', 'stone:gallbladder'] },
  brain: { count: 120, cropSize: [0, 0, 0] as Vec3, outShape: [48, 56, 48] as Vec3, heldOut: ['lesion:thalamus_left'] },
};

/**
 * `storedAs`: the voxelmorph subject was converted from an .npz without a header, so its affine is the
 * identity, but its anatomy is stored as FreeSurfer's LIA (left-hemisphere labels at high i, the brainstem
 * at high j); the loader uses that orientation, and checks left/right on every subject.
 */
const BRAIN_SUBJECTS: Record<string, { t1: string; aseg: string; storedAs?: string }> = {
  vxm: { t1: 'brain/vxm_subject_t1.nii.gz', aseg: 'brain/vxm_subject_aseg.nii.gz', storedAs: 'LIA' },
  bert: { t1: 'brain/bert_t1.nii.gz', aseg: 'brain/bert_aseg.nii.gz' },
};

/** Contrast enhancement (HU added to the non-contrast source) per TotalSegmentator label, per phase. */
const PHASE_OFFSETS: Record<Phase, ReadonlyMap<number, number>> = {
  'non-contrast': new Map(),
  arterial: new Map([[52, 260], [65, 240], [66, 240], [64, 60], [63, 15], [67, 10], [68, 10], [5, 15], [1, 70], [2, 120], [3, 120], [7, 60]]),
  'portal-venous': new Map([[52, 120], [65, 110], [66, 110], [64, 150], [63, 120], [67, 100], [68, 100], [5, 55], [1, 60], [2, 110], [3, 110], [7, 45]]),
};

interface Source {
  name: string;
  image: Volume<Float32Array>;
  labels: Volume<Int32Array>;
  /** Voxels per organ key in the whole source (visibility is the share of these inside a crop). */
  organTotals: Map<string, number>;
  files: Array<{ file: string; sha256: string }>;
  /** CT: HU; brain: white-matter median scaled to 1. */
  fill: number;
  /** Bounding box (voxels, inclusive) of the labelled voxels. */
  box: { lo: Vec3; hi: Vec3 };
}

function labelBox(v: Volume<Int32Array>): { lo: Vec3; hi: Vec3 } {
  const d = v.dims;
  const lo: Vec3 = [Infinity, Infinity, Infinity], hi: Vec3 = [-Infinity, -Infinity, -Infinity];
  for (let q = 0; q < v.data.length; q++) if (v.data[q] > 0) {
    const p = [q % d[0], Math.floor(q / d[0]) % d[1], Math.floor(q / (d[0] * d[1]))];
    for (let a = 0; a < 3; a++) { lo[a] = Math.min(lo[a], p[a]); hi[a] = Math.max(hi[a], p[a]); }
  }
  return { lo, hi };
}

interface SampleTruth {
  id: string;
  split: Split;
  subject: string;
  crop: { origin: Vec3; size: Vec3 };
  phase?: Phase;
  visible: string[];
  findings: Array<Record<string, unknown>>;
  lesionSeeds: number[];
  combos: string[];
  heldOut: boolean;
  augment: Record<string, number>;
  facts: Record<string, Fact[]>;
}

function organsOf(anatomy: Anatomy, lab: Int32Array): Map<string, number> {
  const byLabel = new Map<number, string>();
  for (const o of anatomy.organs) for (const l of o.labels) byLabel.set(l, o.key);
  const out = new Map<string, number>(anatomy.organs.map((o) => [o.key, 0]));
  for (let q = 0; q < lab.length; q++) {
    const k = byLabel.get(lab[q]);
    if (k) out.set(k, out.get(k)! + 1);
  }
  return out;
}

async function loadCt(dataDir: string): Promise<Source> {
  const imgFile = path.join(dataDir, 'abdomen/example_ct.nii.gz');
  const segFile = path.join(dataDir, 'abdomen/example_seg_fast_force_split.nii.gz');
  for (const f of [imgFile, segFile]) if (!existsSync(f)) throw dataError(f, 'the report-proxy source scan is missing', 'the stand-in is cut from ../shared/data/abdomen (see shared/data/README.md); pass --data-dir to point elsewhere');
  const image = reorientToCanonical(await readNifti(imgFile), 'RAS');
  const labels = toLabelMap(reorientToCanonical(await readNifti(segFile), 'RAS'), segFile);
  if (image.dims.join() !== labels.dims.join()) throw dataError(segFile, `label grid ${labels.dims.join('x')} differs from the CT's ${image.dims.join('x')}`);
  return {
    name: 'example_ct', image, labels, organTotals: organsOf(CT_ANATOMY, labels.data), fill: -1024, box: labelBox(labels),
    files: [{ file: 'abdomen/example_ct.nii.gz', sha256: await sha256File(imgFile) }, { file: 'abdomen/example_seg_fast_force_split.nii.gz', sha256: await sha256File(segFile) }],
  };
}

/** A brain at 2 mm RAS (downsampled once, early: bert is 256³), intensities over the white-matter median. */
async function loadBrain(dataDir: string, name: string): Promise<Source> {
  const s = BRAIN_SUBJECTS[name];
  if (!s) throw new LlmedError('usage', `unknown brain subject '${name}'; subjects: ${Object.keys(BRAIN_SUBJECTS).join(', ')}`);
  const t1File = path.join(dataDir, s.t1), asegFile = path.join(dataDir, s.aseg);
  for (const f of [t1File, asegFile]) if (!existsSync(f)) throw dataError(f, 'brain stand-in source is missing', 'see shared/data/README.md');
  const fixHeader = <T extends Volume>(v: T): T => (s.storedAs === 'LIA' ? { ...v, affine: [-1, 0, 0, 0, 0, 0, 1, 0, 0, -1, 0, 0, 0, 0, 0, 1] } : v);
  const t1 = resampleToSpacing(reorientToCanonical(fixHeader(await readNifti(t1File)), 'RAS'), [2, 2, 2], 'linear');
  const aseg = toLabelMap(resampleToSpacing(reorientToCanonical(fixHeader(await readNifti(asegFile)), 'RAS'), [2, 2, 2], 'nearest'), asegFile);
  // Left/right check: in RAS the left hemisphere's white matter (aseg 2) lies at lower x than the right's (41).
  const cx = (label: number) => { let sum = 0, n = 0; for (let q = 0; q < aseg.data.length; q++) if (aseg.data[q] === label) { sum += q % aseg.dims[0]; n++; } return sum / Math.max(n, 1); };
  if (!(cx(2) < cx(41))) throw dataError(asegFile, 'left-hemisphere labels lie right of the right-hemisphere ones after reorientation to RAS: the header orientation is wrong', 'fix the affine (or storedAs) before generating');
  const img = asFloat32(t1.data).slice();
  const wm: number[] = [];
  for (let q = 0; q < img.length; q++) if (aseg.data[q] === 2 || aseg.data[q] === 41) wm.push(img[q]);
  wm.sort((a, b) => a - b);
  const med = wm[Math.floor(wm.length / 2)] || 1;
  for (let q = 0; q < img.length; q++) img[q] /= med;
  return {
    name, image: withData(t1, img, { datatype: 'float32' }), labels: aseg, organTotals: organsOf(BRAIN_ANATOMY, aseg.data), fill: 0, box: labelBox(aseg),
    files: [{ file: s.t1, sha256: await sha256File(t1File) }, { file: s.aseg, sha256: await sha256File(asegFile) }],
  };
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}
export const sha256 = (x: string | Uint8Array) => createHash('sha256').update(x).digest('hex');

interface Plan { kind: FindingKind; organ?: string; side?: Side }

function comboOf(p: Plan): string { return p.kind === 'effusion' ? `effusion:${p.side}` : `${p.kind}:${p.organ}`; }

/** Candidate findings in a crop given the visible organs. */
function candidates(anatomy: Anatomy, visible: Set<string>): Plan[] {
  const out: Plan[] = [];
  for (const o of anatomy.organs) {
    if (!visible.has(o.key)) continue;
    for (const k of o.findings) if (k !== 'effusion') out.push({ kind: k, organ: o.key });
  }
  const l = visible.has('lung_left'), r = visible.has('lung_right');
  if (l) out.push({ kind: 'effusion', side: 'left' });
  if (r) out.push({ kind: 'effusion', side: 'right' });
  if (l && r) out.push({ kind: 'effusion', side: 'both' });
  return out;
}

function choosePlans(anatomy: Anatomy, visible: Set<string>, split: Split, heldOut: Set<string>, forceHeldOut: boolean, rng: Rng): Plan[] {
  let pool = candidates(anatomy, visible);
  if (split !== 'test') pool = pool.filter((p) => !heldOut.has(comboOf(p)));
  const n = rng.pick([0, 1, 1, 1, 2, 2, 2, 1, 0, 2]);
  const chosen: Plan[] = [];
  const take = (p: Plan) => {
    chosen.push(p);
    // One finding per organ, at most one lesion finding and one effusion per sample (the questions ask about "the" lesion).
    pool = pool.filter((q) => (p.organ === undefined || q.organ !== p.organ) && !(p.kind === 'lesion' && q.kind === 'lesion') && !(p.kind === 'effusion' && q.kind === 'effusion') && q.kind !== p.kind);
  };
  if (forceHeldOut) {
    const h = pool.filter((p) => heldOut.has(comboOf(p)));
    if (h.length) take(rng.pick(h));
  }
  while (chosen.length < n && pool.length) take(rng.pick(pool));
  return chosen;
}

export interface GenerateResult {
  out: string;
  hash: string;
  counts: Record<Split, number>;
  reports: number;
  questions: number;
  bytes: number;
  seconds: number;
}

/** Generate the stand-in into `opts.out` (atomic: built under `<out>.tmp-<pid>`, renamed when complete). */
export async function generateReportProxy(opts: ReportProxyOptions): Promise<GenerateResult> {
  const t0 = performance.now();
  const kind = opts.anatomy ?? 'ct';
  const anatomy = kind === 'ct' ? CT_ANATOMY : BRAIN_ANATOMY;
  const def = DEFAULTS[kind];
  const count = opts.count ?? def.count;
  const seed = opts.seed ?? 0;
  const outShape = opts.outShape ?? def.outShape;
  const cropSize = opts.cropSize ?? def.cropSize;
  const valFraction = opts.valFraction ?? 0.15, testFraction = opts.testFraction ?? 0.2;
  const heldOutList = opts.heldOut ?? def.heldOut;
  const heldOutShare = opts.heldOutShare ?? 0.4;
  const blockGap = opts.blockGap ?? 6;
  const visibleFraction = opts.visibleFraction ?? 0.8;
  const dataDir = path.resolve(opts.dataDir ?? defaultDataDir());
  const brainTrain = opts.brainTrain ?? ['vxm'], brainTest = opts.brainTest ?? ['bert'];
  if (!Number.isInteger(count) || count < 8) throw new LlmedError('usage', `--count must be an integer of at least 8 (got ${count})`, { hint: 'train, val and test each need samples' });
  for (const h of heldOutList) {
    const [k, organ] = h.split(':');
    const o = anatomy.organs.find((x) => x.key === organ);
    if (!o || !o.findings.includes(k as FindingKind)) throw new LlmedError('usage', `held-out combination '${h}' is not a finding:organ of the ${kind} stand-in`, { hint: `e.g. ${def.heldOut.join(', ')}` });
  }
  if (kind === 'brain' && brainTrain.some((s) => brainTest.includes(s))) throw new LlmedError('usage', `brain subjects ${brainTrain.filter((s) => brainTest.includes(s)).join(', ')} are in both train and test`);

  const out = path.resolve(opts.out);
  if (existsSync(out) && !opts.force) throw new LlmedError('usage', `${out} exists`, { where: out, hint: 'pass --force to replace it (the old one is removed only after the new one is complete)' });
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(path.join(tmp, 'images'), { recursive: true });
  mkdirSync(path.join(tmp, 'labels'), { recursive: true });

  try {
    const sources: Source[] = kind === 'ct' ? [await loadCt(dataDir)] : await Promise.all([...brainTrain, ...brainTest].map((s) => loadBrain(dataDir, s)));

    // Split of each sample index: a seeded shuffle of exactly round(count·fraction) val and test labels.
    const nTest = Math.max(1, Math.round(count * testFraction)), nVal = Math.max(1, Math.round(count * valFraction));
    const splitOf = new Rng(seedFrom(seed, kind, 'splits')).shuffle([...Array<Split>(nTest).fill('test'), ...Array<Split>(nVal).fill('val'), ...Array<Split>(count - nTest - nVal).fill('train')]);
    const lesionCounter: Record<Split, number> = { train: 0, val: 0, test: 0 };
    const residue: Record<Split, number> = { train: 0, val: 1, test: 2 };

    // CT crop blocks along x: test origins in [0, testMax], training/validation origins from testMax + gap.
    const maxZoom = 1.06;
    const bigX = Math.min(sources[0].image.dims[0], Math.round(cropSize[0] * maxZoom));
    const originSpan = sources[0].image.dims[0] - bigX;
    const testMax = Math.floor(originSpan * 0.3);
    if (kind === 'ct' && testMax + blockGap > originSpan) {
      throw new LlmedError('usage', `crop size ${cropSize[0]} leaves x origins 0..${originSpan}: not enough room for a test block and a gap of ${blockGap}`, { hint: 'use a smaller --crop x size or --block-gap' });
    }

    const truths: SampleTruth[] = [];
    const items: Array<{ id: string; split: Split; image: string; labels: { report: { findings: Record<string, string> }; vqa: VqaItem[] }; meta: Record<string, unknown> }> = [];
    const drafts: Record<Split, Array<{ sample: string; q: DraftQuestion }>> = { train: [], val: [], test: [] };
    const hashes: Array<Record<string, string>> = [];
    const heldOut = new Set(heldOutList);
    const rigid = new Set(anatomy.rigid);

    for (let n = 0; n < count; n++) {
      const split = splitOf[n];
      const id = `${kind === 'ct' ? 'rp' : 'rpb'}_${String(n).padStart(4, '0')}`;
      const rng = new Rng(seedFrom(seed, kind, 'sample', n));
      // Source and crop.
      let src: Source, origin: Vec3, size: Vec3;
      const zoom = rng.uniform(0.94, maxZoom);
      if (kind === 'ct') {
        src = sources[0];
        const d = src.image.dims;
        size = [0, 1, 2].map((a) => Math.min(d[a], Math.round(cropSize[a] * zoom))) as Vec3;
        const xMax = d[0] - size[0];
        const x0 = split === 'test' ? rng.int(0, testMax) : rng.int(Math.min(xMax, testMax + blockGap), xMax);
        origin = [x0, rng.int(0, d[1] - size[1]), rng.int(0, d[2] - size[2])];
      } else {
        const names = split === 'test' ? brainTest : brainTrain;
        src = sources.find((s) => s.name === rng.pick(names))!;
        const { lo, hi } = src.box;
        size = [0, 1, 2].map((a) => Math.round((hi[a] - lo[a] + 9) * zoom)) as Vec3;
        origin = [0, 1, 2].map((a) => Math.round((lo[a] + hi[a]) / 2 - size[a] / 2) + rng.int(-3, 3)) as Vec3;
      }
      const imgBox = extractBox(src.image, origin, size, src.fill);
      const labBox = extractBox(src.labels, origin, size, 0);
      const crop: Crop = { img: imgBox.data, lab: labBox.data, dims: imgBox.dims, spacing: imgBox.spacing };
      const inCrop = organsOf(anatomy, crop.lab);
      const visible = new Set(anatomy.organs.filter((o) => (src.organTotals.get(o.key) ?? 0) > 0 && inCrop.get(o.key)! / src.organTotals.get(o.key)! >= visibleFraction).map((o) => o.key));

      // Findings.
      const phase: Phase | undefined = kind === 'ct' ? rng.pick(PHASES) : undefined;
      if (phase) enhance(crop, PHASE_OFFSETS[phase]);
      const plans = choosePlans(anatomy, visible, split, heldOut, split === 'test' && rng.chance(heldOutShare), rng);
      const facts: Fact[] = [];
      const findings: Array<Record<string, unknown>> = [];
      const lesionSeeds: number[] = [];
      // Enlargement first, so lesions are painted into the enlarged organ.
      plans.sort((a, b) => Number(b.kind === 'enlargement') - Number(a.kind === 'enlargement'));
      for (const p of plans) {
        if (p.kind === 'enlargement') {
          const o = organByKey(anatomy, p.organ!);
          const factor = kind === 'ct' ? rng.uniform(1.2, 1.35) : rng.uniform(1.35, 1.7);
          const r = enlarge(crop, o.labels, factor, rigid);
          facts.push({ category: 'enlargement', organ: o.key });
          findings.push({ kind: 'enlargement', organ: o.key, factor: round(factor, 3), ...r });
        } else if (p.kind === 'lesion') {
          const o = organByKey(anatomy, p.organ!);
          const lesionSeed = residue[split] + 3 * lesionCounter[split]++;
          lesionSeeds.push(lesionSeed);
          const lr = new Rng(seedFrom(seed, kind, 'lesion', lesionSeed));
          const idx = organIndices(crop, o.labels);
          const voxMl = crop.spacing[0] * crop.spacing[1] * crop.spacing[2];
          const eqD = Math.cbrt((6 * idx.length * voxMl) / Math.PI);
          const [minD, maxD] = kind === 'ct' ? [8, 45] : [6, 30];
          const largest = Math.round(lr.uniform(minD, Math.max(minD + 1, Math.min(maxD, 0.7 * eqD))));
          const countL = lr.pick([1, 1, 1, 2, 2, 3]);
          const density: Density = lr.chance(0.65) ? 'low' : 'high';
          const organMean = meanAt(crop, idx);
          const blobs = [];
          for (let b = 0; b < countL; b++) {
            const dmm = b === 0 ? largest : Math.max(minD * 0.6, largest * lr.uniform(0.45, 0.85));
            const delta = kind === 'ct' ? (density === 'low' ? -lr.uniform(45, 80) : lr.uniform(40, 70)) : organMean * (density === 'low' ? -lr.uniform(0.3, 0.45) : lr.uniform(0.25, 0.4));
            blobs.push({ ...paintBlob(crop, idx, [...o.labels, LESION_LABEL], lr, dmm, organMean + delta, kind === 'ct' ? 8 : 0.03, LESION_LABEL), delta: round(delta, 3) });
          }
          facts.push({ category: 'lesion', organ: o.key, count: countL, sizeMm: largest, density });
          findings.push({ kind: 'lesion', organ: o.key, seed: lesionSeed, density, largestMm: largest, blobs });
        } else if (p.kind === 'stone') {
          const o = organByKey(anatomy, p.organ!);
          const idx = organIndices(crop, o.labels);
          const dmm = rng.uniform(4, 9), hu = rng.uniform(700, 1100);
          const blob = paintBlob(crop, idx, o.labels, rng, dmm, hu, 30, STONE_LABEL, 'max');
          facts.push({ category: 'stone', organ: o.key });
          findings.push({ kind: 'stone', organ: o.key, hu: round(hu, 1), ...blob, diameterMm: round(dmm, 2) });
        } else {
          const sides: Array<'left' | 'right'> = p.side === 'both' ? ['left', 'right'] : [p.side as 'left' | 'right'];
          const depth = rng.uniform(0.25, 0.5);
          let voxels = 0;
          for (const s of sides) voxels += paintEffusion(crop, organIndices(crop, organByKey(anatomy, `lung_${s}`).labels), depth, 12, 6, rng);
          facts.push({ category: 'effusion', side: p.side! });
          findings.push({ kind: 'effusion', side: p.side, depth: round(depth, 3), voxels });
        }
      }
      const augment = kind === 'ct'
        ? { scale: rng.uniform(0.95, 1.05), shift: rng.uniform(-15, 15), noiseSd: rng.uniform(4, 12), zoom }
        : { scale: rng.uniform(0.93, 1.07), shift: rng.uniform(-0.03, 0.03), noiseSd: rng.uniform(0.01, 0.03), zoom };

      // Facts per region: phase (CT, in its region), findings, then a normal sentence per visible organ without one.
      const regionFacts: Record<string, Fact[]> = Object.fromEntries(anatomy.regions.map((r) => [r, []]));
      const regionOfFact = (f: Fact): string => (f.category === 'effusion' ? 'chest' : f.category === 'phase' ? anatomy.phaseRegion! : organByKey(anatomy, (f as { organ: string }).organ).region);
      const visibleRegions = new Set(anatomy.organs.filter((o) => visible.has(o.key)).map((o) => o.region));
      if (phase && visibleRegions.has(anatomy.phaseRegion!)) regionFacts[anatomy.phaseRegion!].push({ category: 'phase', phase });
      for (const f of facts) regionFacts[regionOfFact(f)].push(f);
      const withFinding = new Set(facts.flatMap((f) => ('organ' in f ? [f.organ] : f.category === 'effusion' ? (f.side === 'both' ? ['lung_left', 'lung_right'] : [`lung_${f.side}`]) : [])));
      for (const o of anatomy.organs) if (visible.has(o.key) && !withFinding.has(o.key)) regionFacts[o.region].push({ category: 'normal', organ: o.key });
      const pick = <T>(xs: readonly T[]) => rng.pick(xs);
      const reports = Object.fromEntries(anatomy.regions.map((r) => [r, regionFacts[r].map((f) => writeFact(f, pick, anatomy.modality)).join(' ')]));

      // Volumes, written at the output shape.
      const imgOut = resampleToShape(withData(imgBox, crop.img), outShape, 'linear') as Volume<Float32Array>;
      // Intensity augmentation and noise on the written grid: noise is a property of the delivered image
      // (and drawing it there costs a tenth of drawing it at the source resolution).
      const outCrop: Crop = { img: imgOut.data, lab: new Int32Array(0), dims: imgOut.dims, spacing: imgOut.spacing };
      augmentIntensity(outCrop, augment.scale, augment.shift, augment.noiseSd, 0, rng);
      const labOut = resampleToShape(withData(labBox, crop.lab), outShape, 'nearest');
      const description = 'llmed report-proxy pseudo-subject (synthetic findings)';
      const imgBytes = kind === 'ct'
        ? encodeNifti(withData(imgOut, Int16Array.from(imgOut.data, (v) => Math.max(-1024, Math.min(3071, Math.round(v))))), { datatype: 'int16', description })
        : encodeNifti(withData(imgOut, Int16Array.from(imgOut.data, (v) => Math.max(-32768, Math.min(32767, Math.round(v * 1000))))), { datatype: 'int16', description });
      const labBytes = encodeNifti(withData(labOut, Uint8Array.from(labOut.data)), { datatype: 'uint8', intent: 'LABEL', description });
      writeFileSync(path.join(tmp, 'images', `${id}.nii.gz`), gzipSync(imgBytes, { level: 6 }));
      writeFileSync(path.join(tmp, 'labels', `${id}.nii.gz`), gzipSync(labBytes, { level: 6 }));
      hashes.push({ id, image: sha256(imgBytes), labels: sha256(labBytes) });

      const combos = plans.map(comboOf);
      truths.push({
        id, split, subject: src.name, crop: { origin, size }, phase, visible: [...visible].sort(), findings, lesionSeeds, combos,
        heldOut: combos.some((c) => heldOut.has(c)), augment: Object.fromEntries(Object.entries(augment).map(([k, v]) => [k, round(v, 4)])), facts: regionFacts,
      });
      items.push({ id, split, image: `images/${id}.nii.gz`, labels: { report: { findings: reports }, vqa: [] }, meta: { source: kind === 'ct' ? STATEMENT : BRAIN_STATEMENT, subject: src.name, labels: `labels/${id}.nii.gz` } });
      for (const q of draftQuestions(facts.concat(phase ? [{ category: 'phase', phase }] : []), anatomy, rng)) drafts[split].push({ sample: id, q });
      opts.onProgress?.(n + 1, count);
    }

    // Letters balanced per split and question type.
    let questions = 0;
    for (const split of ['train', 'val', 'test'] as Split[]) {
      for (const { sample, item } of balanceLetters(drafts[split], new Rng(seedFrom(seed, kind, 'letters', split)))) {
        items.find((x) => x.id === sample)!.labels.vqa.push(item);
        questions++;
      }
    }

    const leakage = checkLeakage(truths.map((t) => ({ ...t, image: hashes.find((h) => h.id === t.id)!.image })), { heldOut: heldOutList, blockGap: kind === 'ct' ? blockGap : undefined, subjects: kind === 'brain' ? { train: brainTrain, test: brainTest } : undefined });
    if (!leakage.ok) throw new LlmedError('data', `leakage check failed: ${leakage.problems.join('; ')}`, { where: out, hint: 'this is a generator bug: report it with the seed and options' });

    const statement = kind === 'ct' ? STATEMENT : BRAIN_STATEMENT;
    const splitName: Record<Split, string> = { train: 'training', val: 'validation', test: 'test' };
    const dataset: Record<string, unknown> = { description: statement };
    for (const s of ['train', 'val', 'test'] as Split[]) dataset[splitName[s]] = items.filter((x) => x.split === s).map(({ split: _s, ...rest }) => rest);
    const factsDoc = { statement, format: FORMAT, samples: Object.fromEntries(truths.map((t) => [t.id, t])) };
    const config = {
      anatomy: kind, count, seed, cropSize, outShape, valFraction, testFraction, heldOut: heldOutList, heldOutShare, blockGap: kind === 'ct' ? blockGap : null, visibleFraction,
      brainTrain: kind === 'brain' ? brainTrain : null, brainTest: kind === 'brain' ? brainTest : null,
    };
    const counts = { train: 0, val: 0, test: 0 } as Record<Split, number>;
    for (const t of truths) counts[t.split]++;
    const body = {
      format: FORMAT,
      statement,
      config,
      sources: sources.flatMap((s) => s.files),
      design: {
        lesionSeeds: 'seed % 3 = 0 train, 1 val, 2 test',
        heldOut: `${heldOutList.join(', ')}: test samples only`,
        cropBlocks: kind === 'ct' ? `crop x origin: test 0..${testMax}, train/val >= ${testMax + blockGap} (gap ${blockGap} voxels of 3 mm)` : `subjects: train/val ${brainTrain.join(', ')}, test ${brainTest.join(', ')}`,
        letters: 'balanced per split and question type',
      },
      counts,
      splits: { train: truths.filter((t) => t.split === 'train').map((t) => t.id), val: truths.filter((t) => t.split === 'val').map((t) => t.id), test: truths.filter((t) => t.split === 'test').map((t) => t.id) },
      leakage,
      samples: hashes,
      contentSha256: sha256(canonical({ dataset, facts: factsDoc })),
    };
    const hash = sha256(canonical(body));
    const manifest = { ...body, hash };
    writeFileSync(path.join(tmp, 'dataset.json'), `${JSON.stringify(dataset, null, 1)}\n`);
    writeFileSync(path.join(tmp, 'facts.json'), `${JSON.stringify(factsDoc, null, 1)}\n`);
    writeFileSync(path.join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    writeFileSync(path.join(tmp, 'README.md'), readme(kind, statement, config, counts, items.reduce((a, x) => a + Object.values(x.labels.report.findings).filter(Boolean).length, 0), questions, hash, body.design));

    // Replace atomically: the old folder goes only once the new one is complete.
    if (existsSync(out)) {
      const old = `${out}.old-${process.pid}`;
      renameSync(out, old);
      renameSync(tmp, out);
      rmSync(old, { recursive: true, force: true });
    } else {
      mkdirSync(path.dirname(out), { recursive: true });
      renameSync(tmp, out);
    }
    const reports = items.reduce((a, x) => a + Object.values(x.labels.report.findings).filter(Boolean).length, 0);
    return { out, hash, counts, reports, questions, bytes: folderBytes(out), seconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Where the shared real volumes are: $LLMED_SHARED_DATA, else `../shared/data` beside the repository (the
 * layout of shared/data/README.md), also looked for one level further up (a git worktree in a folder).
 */
export function defaultDataDir(): string {
  if (process.env.LLMED_SHARED_DATA) return process.env.LLMED_SHARED_DATA;
  const root = path.resolve(import.meta.dirname, '../../../..');
  const candidates = [path.resolve(root, '../shared/data'), path.resolve(root, '../../shared/data')];
  return candidates.find((c) => existsSync(path.join(c, 'abdomen'))) ?? candidates[0];
}

const round = (v: number, d: number) => Math.round(v * 10 ** d) / 10 ** d;

function folderBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? folderBytes(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).size;
  return n;
}

export interface LeakageInput {
  id: string;
  split: Split;
  subject: string;
  crop: { origin: Vec3 };
  lesionSeeds: number[];
  combos: string[];
  image: string;
}

/**
 * The leakage check (run by the generator, and by the tests on its output): test lesion seeds unused by
 * train/val; held-out combinations only in test; CT test crop origins ≥ `blockGap` voxels (x) from every
 * training/validation origin; brain test subjects disjoint from training ones; no image bytes shared
 * across splits.
 */
export function checkLeakage(samples: readonly LeakageInput[], design: { heldOut: readonly string[]; blockGap?: number; subjects?: { train: string[]; test: string[] } }): { ok: boolean; problems: string[]; checks: Record<string, string> } {
  const problems: string[] = [];
  const test = samples.filter((s) => s.split === 'test'), rest = samples.filter((s) => s.split !== 'test');
  const restSeeds = new Set(rest.flatMap((s) => s.lesionSeeds));
  const shared = test.flatMap((s) => s.lesionSeeds).filter((x) => restSeeds.has(x));
  if (shared.length) problems.push(`lesion seeds ${[...new Set(shared)].join(', ')} are in test and train/val`);
  const trainSeeds = new Set(samples.filter((s) => s.split === 'train').flatMap((s) => s.lesionSeeds));
  const valShared = samples.filter((s) => s.split === 'val').flatMap((s) => s.lesionSeeds).filter((x) => trainSeeds.has(x));
  if (valShared.length) problems.push(`lesion seeds ${[...new Set(valShared)].join(', ')} are in val and train`);
  const held = new Set(design.heldOut);
  const leakedCombos = rest.filter((s) => s.combos.some((c) => held.has(c)));
  if (leakedCombos.length) problems.push(`held-out combinations appear outside test in ${leakedCombos.map((s) => s.id).join(', ')}`);
  let minGap = Infinity;
  if (design.blockGap !== undefined) {
    for (const t of test) for (const r of rest) minGap = Math.min(minGap, Math.abs(t.crop.origin[0] - r.crop.origin[0]));
    if (minGap < design.blockGap) problems.push(`a test crop origin is ${minGap} voxels from a training one (needs ${design.blockGap})`);
  }
  if (design.subjects) {
    const bad = test.filter((s) => !design.subjects!.test.includes(s.subject)).concat(rest.filter((s) => !design.subjects!.train.includes(s.subject)));
    if (bad.length) problems.push(`samples ${bad.map((s) => s.id).join(', ')} come from a subject of the other side of the split`);
  }
  const imgSplit = new Map<string, Split>();
  for (const s of samples) {
    const prev = imgSplit.get(s.image);
    if (prev && prev !== s.split) problems.push(`sample ${s.id} has the same image bytes as a ${prev} sample`);
    imgSplit.set(s.image, s.split);
  }
  const heldInTest = test.filter((s) => s.combos.some((c) => held.has(c))).length;
  return {
    ok: problems.length === 0,
    problems,
    checks: {
      lesionSeeds: `${test.flatMap((s) => s.lesionSeeds).length} test lesion seeds, none in train/val`,
      heldOut: `${heldInTest} of ${test.length} test samples carry a held-out combination; none outside test`,
      ...(design.blockGap !== undefined ? { cropBlocks: `closest test/train crop origins ${Number.isFinite(minGap) ? minGap : '-'} voxels apart (x; needs ${design.blockGap})` } : {}),
      ...(design.subjects ? { subjects: `train/val ${design.subjects.train.join(', ')}; test ${design.subjects.test.join(', ')}` } : {}),
      images: 'no image shared across splits',
    },
  };
}

function readme(kind: string, statement: string, config: Record<string, unknown>, counts: Record<Split, number>, reports: number, questions: number, hash: string, design: Record<string, string>): string {
  return `# report-proxy${kind === 'brain' ? '-brain' : ''} (generated by \`llmed data generate report-proxy${kind === 'brain' ? '-brain' : ''}\`)

**${statement[0].toUpperCase()}${statement.slice(1)}.**

${kind === 'ct'
    ? 'Each sample is a crop of the one CT in ../shared/data/abdomen (example_ct.nii.gz with its TotalSegmentator labels), with a contrast phase, synthetic findings (lesions of a given size and density in an organ, stones, pleural effusion, organ enlargement) and intensity/zoom augmentation.'
    : 'Each sample is a crop of one of the aseg-labelled brains in ../shared/data/brain, with synthetic lesions and ventricular enlargement and intensity/zoom augmentation. Test subjects are not training subjects.'}
The findings text is written from the known facts by fixed rules; it is not a radiologist's report and says
nothing about a real patient.

| file | what |
| --- | --- |
| dataset.json | AMOS-MM layout: training / validation / test items with image, labels.report.findings per region, labels.vqa (4 options, letters balanced) — read with \`readAmosMM\` |
| images/*.nii.gz | the pseudo-subject volumes (${kind === 'ct' ? 'int16 HU' : 'int16, white-matter median = 1000'}), RAS |
| labels/*.nii.gz | truth labels: source organ ids, lesions ${LESION_LABEL}, stones ${STONE_LABEL}, effusion ${EFFUSION_LABEL} |
| facts.json | the facts of every sample per region, the painted truth (lesion seeds, sizes, positions), crop and augmentation |
| manifest.json | config, sources (SHA-256), splits, leakage checks, per-image SHA-256 and the manifest hash |

Samples: train ${counts.train}, val ${counts.val}, test ${counts.test}; ${reports} region reports, ${questions} questions.

Split design: ${Object.entries(design).map(([k, v]) => `${k}: ${v}`).join('; ')}.

Config: \`${JSON.stringify(config)}\`

Manifest hash: \`${hash}\`
`;
}
