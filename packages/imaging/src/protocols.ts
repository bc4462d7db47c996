/**
 * The pair protocols of the papers' experiments, as pure functions of scan lists. Each returns
 * `{ train, val?, test }` lists of `Pair` (`moving` is registered onto `fixed`; "A → B" below means
 * moving A, fixed B). The functions never sort or shuffle unless documented: the caller's order is
 * the protocol's order, so pass lists in the dataset's canonical (e.g. sorted id) order.
 */
import { dataError } from '@llmed/core/errors';
import { mulberry32 } from '@llmed/core/random';
import type { Pair } from './datasets.ts';

export interface ProtocolSplit {
  train: Pair[];
  val?: Pair[];
  test: Pair[];
}

/** Optional label lookup: the label map path of a scan, if any. */
export type LabelLookup = (scan: string) => string | undefined;

function pair(moving: string, fixed: string, labels?: LabelLookup): Pair {
  const p: Pair = { moving, fixed };
  const ml = labels?.(moving);
  const fl = labels?.(fixed);
  if (ml) p.movingLabels = ml;
  if (fl) p.fixedLabels = fl;
  return p;
}

function assertDistinct(names: readonly string[], where: string): void {
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) throw dataError(where, `scan '${n}' is listed twice`);
    seen.add(n);
  }
}

/** All ordered pairs (a → b, a ≠ b) of a list: n·(n-1) pairs, moving-major. */
export function allOrderedPairs(scans: readonly string[], labels?: LabelLookup): Pair[] {
  const out: Pair[] = [];
  for (let a = 0; a < scans.length; a++) {
    for (let b = 0; b < scans.length; b++) if (a !== b) out.push(pair(scans[a], scans[b], labels));
  }
  return out;
}

/**
 * OAI knee protocol (LLaMA-Reg / LLM-Morph style):
 * - train: the first 200 scans, all ordered pairs a → b (a ≠ b): 200·199 = 39,800 pairs;
 * - test: from the remaining scans, `remaining[0..40)` are the 40 fixed scans and
 *   `remaining[40..90)` the 50 moving scans (disjoint), every moving → every fixed: 2,000 pairs.
 * - val: the ordered pairs of the 2 scans after the first 290, when there are 2 (the protocol leaves them unused,
 *   so validation neither trains nor tests on a scan); absent otherwise.
 * Needs at least 290 scans; scans after the first 292 are not used.
 */
export function oaiPairs(names: readonly string[], opts: { labels?: LabelLookup } = {}): ProtocolSplit {
  const nTrain = 200;
  const nFixed = 40;
  const nMoving = 50;
  const need = nTrain + nFixed + nMoving;
  if (names.length < need) {
    throw dataError('oaiPairs', `the OAI protocol needs at least ${need} scans (${nTrain} train + ${nFixed} fixed + ${nMoving} moving test), got ${names.length}`);
  }
  assertDistinct(names, 'oaiPairs');
  const train = allOrderedPairs(names.slice(0, nTrain), opts.labels);
  const rest = names.slice(nTrain);
  const fixed = rest.slice(0, nFixed);
  const moving = rest.slice(nFixed, nFixed + nMoving);
  const test: Pair[] = [];
  for (const m of moving) for (const f of fixed) test.push(pair(m, f, opts.labels));
  const spare = names.slice(need, need + 2);
  return spare.length === 2 ? { train, val: allOrderedPairs(spare, opts.labels), test } : { train, test };
}

/**
 * OASIS (Learn2Reg task 3) evaluation pairs over the validation scans, in the given order:
 * - `variant: 'l2r'` (default): consecutive scans as in Learn2Reg's `registration_val`, i.e. pair i is
 *   `fixed = scans[i]`, `moving = scans[i+1]` (19 pairs for the 20 validation subjects 0438..0457);
 * - `variant: 'all-ordered'` (alias `'llama-reg'`, the LLaMA-Reg protocol): all ordered pairs a → b
 *   (a ≠ b) of the validation scans: 20·19 = 380.
 * These are the reported evaluation pairs (Learn2Reg's test labels are not public), so they are
 * returned as `test`. `train` is every ordered pair of `opts.training` (empty when not given).
 */
export function oasisValidationPairs(
  validation: readonly string[],
  opts: { variant?: 'l2r' | 'all-ordered' | 'llama-reg'; training?: readonly string[]; labels?: LabelLookup } = {},
): ProtocolSplit {
  const variant = opts.variant ?? 'l2r';
  if (validation.length < 2) throw dataError('oasisValidationPairs', `needs at least 2 validation scans, got ${validation.length}`);
  assertDistinct(validation, 'oasisValidationPairs');
  let test: Pair[];
  if (variant === 'l2r') {
    test = [];
    for (let i = 0; i + 1 < validation.length; i++) test.push(pair(validation[i + 1], validation[i], opts.labels));
  } else if (variant === 'all-ordered' || variant === 'llama-reg') {
    test = allOrderedPairs(validation, opts.labels);
  } else {
    throw dataError('oasisValidationPairs', `unknown variant '${String(variant)}'; use 'l2r' or 'all-ordered' ('llama-reg')`);
  }
  const training = opts.training ?? [];
  const overlap = training.filter((t) => validation.includes(t));
  if (overlap.length > 0) throw dataError('oasisValidationPairs', `${overlap.length} scan(s) are in both training and validation, e.g. '${overlap[0]}'`);
  return { train: allOrderedPairs(training, opts.labels), test };
}

/**
 * Abdomen MR→CT protocol (Learn2Reg AbdomenMRCT style, inter-modal):
 * - test: the first `heldOut` (default 10) MR and the first `heldOut` CT scans are held out and make
 *   the fixed test pairs MR_i → CT_i (i < heldOut) — order the lists so these are matching subjects;
 * - train: every remaining MR → every remaining CT (36 MR × 45 CT = 1,620 pairs for 46 MR and 55 CT).
 */
export function abdomenMrCtPairs(mrs: readonly string[], cts: readonly string[], opts: { heldOut?: number; labels?: LabelLookup } = {}): ProtocolSplit {
  const h = opts.heldOut ?? 10;
  if (!Number.isInteger(h) || h < 1) throw dataError('abdomenMrCtPairs', `heldOut must be a positive integer, got ${h}`);
  if (mrs.length <= h || cts.length <= h) {
    throw dataError('abdomenMrCtPairs', `needs more than ${h} MR and ${h} CT scans (${h} of each are held out for testing), got ${mrs.length} MR and ${cts.length} CT`);
  }
  assertDistinct([...mrs, ...cts], 'abdomenMrCtPairs');
  const test: Pair[] = [];
  for (let i = 0; i < h; i++) test.push(pair(mrs[i], cts[i], opts.labels));
  const train: Pair[] = [];
  for (const m of mrs.slice(h)) for (const c of cts.slice(h)) train.push(pair(m, c, opts.labels));
  return { train, test };
}

// The seeded generator lives in @llmed/core (one implementation); re-exported here for existing callers.
export { mulberry32 };

/** Fisher–Yates shuffle of a copy of `items`, driven by mulberry32(seed). */
export function seededShuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  const rand = mulberry32(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

/** One SR-Reg subject: a brain MR and CT of the same person (SynthRAD-derived). */
export interface SrRegSubject {
  id: string;
  mr: string;
  ct: string;
  mrLabels?: string;
  ctLabels?: string;
}

/**
 * SR-Reg split. `subjects` are SrRegSubject records, or plain ids (then every pair names ids:
 * `moving` is the id whose MR is used, `fixed` the id whose CT is used). Subjects are sorted by id (so input order does not matter), shuffled with
 * `seededShuffle(·, seed)`, then cut into 150 train / 10 val / 20 test (override with `counts`; the
 * subject count must equal their sum).
 * - test: consecutive shuffled test subjects (a, b) = (t[2m], t[2m+1]) make the pair MR(a) → CT(b):
 *   10 inter-subject MR→CT pairs;
 * - val: the same pairing over the val subjects (5 pairs);
 * - train: every ordered inter-subject pair MR(a) → CT(b), a ≠ b, of the train subjects
 *   (150·149 = 22,350 pairs).
 */
export function srRegSplit(
  subjectsIn: readonly (SrRegSubject | string)[],
  seed: number,
  opts: { counts?: { train: number; val: number; test: number } } = {},
): ProtocolSplit & { val: Pair[]; subjects: { train: string[]; val: string[]; test: string[] } } {
  const subjects: SrRegSubject[] = subjectsIn.map((s) => (typeof s === 'string' ? { id: s, mr: s, ct: s } : s));
  const counts = opts.counts ?? { train: 150, val: 10, test: 20 };
  const total = counts.train + counts.val + counts.test;
  if (!Number.isInteger(seed)) throw dataError('srRegSplit', `seed must be an integer, got ${seed}`);
  if (subjects.length !== total) {
    throw dataError(
      'srRegSplit',
      `the split ${counts.train}/${counts.val}/${counts.test} needs exactly ${total} subjects, got ${subjects.length}${subjects.length < total ? ' (too few)' : ''}`,
    );
  }
  if (counts.val % 2 !== 0 || counts.test % 2 !== 0) throw dataError('srRegSplit', 'val and test counts must be even (subjects are paired)');
  assertDistinct(subjects.map((s) => s.id), 'srRegSplit');
  const sorted = [...subjects].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const shuffled = seededShuffle(sorted, seed);
  const tr = shuffled.slice(0, counts.train);
  const va = shuffled.slice(counts.train, counts.train + counts.val);
  const te = shuffled.slice(counts.train + counts.val);
  const mrToCt = (a: SrRegSubject, b: SrRegSubject): Pair => {
    const p: Pair = { moving: a.mr, fixed: b.ct };
    if (a.mrLabels) p.movingLabels = a.mrLabels;
    if (b.ctLabels) p.fixedLabels = b.ctLabels;
    return p;
  };
  const paired = (list: SrRegSubject[]) => {
    const out: Pair[] = [];
    for (let m = 0; m + 1 < list.length; m += 2) out.push(mrToCt(list[m], list[m + 1]));
    return out;
  };
  const train: Pair[] = [];
  for (const a of tr) for (const b of tr) if (a !== b) train.push(mrToCt(a, b));
  return {
    train,
    val: paired(va),
    test: paired(te),
    subjects: { train: tr.map((s) => s.id), val: va.map((s) => s.id), test: te.map((s) => s.id) },
  };
}
