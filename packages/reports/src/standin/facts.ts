/**
 * Facts, the report grammar, its parser and `fact-f1` — importable on their own as `@llmed/reports/facts`
 * (a Metric plugin wraps `factF1`; nothing here reads files or volumes).
 *
 * A stand-in report is written from facts by rules: each fact category has several sentence templates
 * (paraphrases, worded for this project), one picked per sentence by the generator's seeded stream. The
 * parser is the inverse of that grammar: every template compiles to an anchored regular expression whose
 * slots accept exactly the words the writer can put there, so parsing any generated report gives back its
 * facts (the round-trip test checks fact-f1 = 1.0). Sentences of other text (a model's output) that match
 * no template are returned as `unparsed`, never guessed at.
 *
 * fact-f1 scores atomic facts per category (a lesion is four atoms: organ, size bin, density, count), so a
 * report that finds the right lesion but misjudges its size still gets the organ right.
 */
import { BRAIN_ANATOMY, CT_ANATOMY, type Side } from './anatomy.ts';

export type Density = 'low' | 'high';
export type Phase = 'non-contrast' | 'arterial' | 'portal-venous';
export const PHASES: readonly Phase[] = ['non-contrast', 'arterial', 'portal-venous'];

export type Fact =
  | { category: 'lesion'; organ: string; count: number; sizeMm: number; density: Density }
  | { category: 'stone'; organ: string }
  | { category: 'effusion'; side: Side }
  | { category: 'enlargement'; organ: string }
  | { category: 'phase'; phase: Phase }
  | { category: 'normal'; organ: string };

export type FactCategory = Fact['category'];
/** The categories fact-f1 reports (lesion split into its attributes). */
export const FACT_F1_CATEGORIES = ['lesion', 'lesion-size', 'lesion-density', 'lesion-count', 'stone', 'effusion', 'enlargement', 'phase', 'normal'] as const;
export type F1Category = (typeof FACT_F1_CATEGORIES)[number];

/** Size bins of the largest lesion (integer millimetres as written in the report). */
export const SIZE_BINS = [
  { id: 'under-15', text: 'under 15 mm', lo: 0, hi: 15 },
  { id: '15-24', text: '15 to 24 mm', lo: 15, hi: 25 },
  { id: '25-34', text: '25 to 34 mm', lo: 25, hi: 35 },
  { id: '35-plus', text: '35 mm or more', lo: 35, hi: Infinity },
] as const;

export function sizeBin(mm: number): (typeof SIZE_BINS)[number] {
  return SIZE_BINS.find((b) => mm >= b.lo && mm < b.hi) ?? SIZE_BINS[SIZE_BINS.length - 1];
}

const DENSITY_WORDS: Record<'CT' | 'MR', Record<Density, string[]>> = {
  CT: { low: ['hypodense', 'hypoattenuating', 'low-attenuation'], high: ['hyperdense', 'hyperattenuating', 'high-attenuation'] },
  MR: { low: ['hypointense', 'T1-hypointense'], high: ['hyperintense', 'T1-hyperintense'] },
};
const COUNT_WORDS = ['one', 'two', 'three', 'four', 'five'];
const SIDE_ADJ: Record<Side, string> = { left: 'left', right: 'right', both: 'bilateral' };
const SIDE_WHERE: Record<Side, string> = { left: 'the left', right: 'the right', both: 'both sides' };

/** Organ names of both stand-in anatomies → organ key (names are unique across them). */
const ORGANS = [...CT_ANATOMY.organs, ...BRAIN_ANATOMY.organs];
const NAME_TO_ORGAN = new Map<string, string>(ORGANS.flatMap((o) => o.names.map((n) => [n.toLowerCase(), o.key] as [string, string])));
const PLURAL = new Set(ORGANS.filter((o) => o.plural).map((o) => o.key));

type Slots = Record<string, string>;

interface Template {
  id: string;
  category: FactCategory;
  /** Sentence with {slot}s; the first letter is capitalised when written. */
  text: string;
  /** The slot values for a fact, or null when this paraphrase does not fit it (e.g. singular vs plural). */
  fill(f: Fact, pick: (xs: readonly string[]) => string, modality: 'CT' | 'MR'): Slots | null;
  /** The fact back from the slot values. */
  read(s: Slots): Fact;
}

const organName = (key: string, pick: (xs: readonly string[]) => string) => pick(ORGANS.find((o) => o.key === key)!.names);
const be = (key: string) => (PLURAL.has(key) ? 'are' : 'is');
const organOf = (s: Slots) => NAME_TO_ORGAN.get(s.organ.toLowerCase())!;
const densityOf = (word: string): Density => (/^(t1-)?hyp(o)/i.test(word) || /^low/i.test(word) ? 'low' : 'high');
const countOf = (word: string) => COUNT_WORDS.indexOf(word.toLowerCase()) + 1;

function lesionTemplate(id: string, text: string, plural: boolean): Template {
  return {
    id, category: 'lesion', text,
    fill: (f, pick, modality) => {
      if (f.category !== 'lesion' || (f.count > 1) !== plural) return null;
      return { organ: organName(f.organ, pick), density: pick(DENSITY_WORDS[modality][f.density]), mm: String(f.sizeMm), count: COUNT_WORDS[f.count - 1] };
    },
    read: (s) => ({ category: 'lesion', organ: organOf(s), density: densityOf(s.density), sizeMm: Number(s.mm), count: s.count ? countOf(s.count) : 1 }),
  };
}

function organTemplate(id: string, category: 'stone' | 'enlargement' | 'normal', text: string): Template {
  return {
    id, category, text,
    fill: (f) => (f.category === category ? { organ: '', be: be(f.organ) } : null),
    read: (s) => ({ category, organ: organOf(s) }) as Fact,
  };
}

function effusionTemplate(id: string, text: string, slot: 'side' | 'where'): Template {
  return {
    id, category: 'effusion', text,
    fill: (f) => (f.category === 'effusion' ? { [slot]: slot === 'side' ? SIDE_ADJ[f.side] : SIDE_WHERE[f.side] } : null),
    read: (s) => {
      const w = (s.side ?? s.where).toLowerCase();
      const side = (Object.keys(SIDE_ADJ) as Side[]).find((k) => SIDE_ADJ[k] === w || SIDE_WHERE[k] === w)!;
      return { category: 'effusion', side };
    },
  };
}

function phaseTemplate(id: string, phase: Phase, text: string): Template {
  return { id, category: 'phase', text, fill: (f) => (f.category === 'phase' && f.phase === phase ? {} : null), read: () => ({ category: 'phase', phase }) };
}

/** The grammar: several paraphrases per fact category (wording of this project). */
export const TEMPLATES: readonly Template[] = [
  lesionTemplate('lesion-1', 'there is a {density} lesion in the {organ}, measuring {mm} mm.', false),
  lesionTemplate('lesion-2', 'a {mm} mm {density} lesion is seen in the {organ}.', false),
  lesionTemplate('lesion-3', 'the {organ} contains a {density} focal lesion of {mm} mm.', false),
  lesionTemplate('lesions-1', 'there are {count} {density} lesions in the {organ}, the largest measuring {mm} mm.', true),
  lesionTemplate('lesions-2', '{count} {density} focal lesions are seen in the {organ}; the largest is {mm} mm.', true),
  lesionTemplate('lesions-3', 'the {organ} contains {count} {density} lesions, up to {mm} mm.', true),
  organTemplate('stone-1', 'stone', 'a calculus is present in the {organ}.'),
  organTemplate('stone-2', 'stone', 'there is a dense stone in the {organ}.'),
  organTemplate('stone-3', 'stone', 'the {organ} contains a small radiodense calculus.'),
  effusionTemplate('effusion-1', 'there is a {side} pleural effusion.', 'side'),
  effusionTemplate('effusion-2', '{side} pleural effusion is present.', 'side'),
  effusionTemplate('effusion-3', 'pleural fluid layers dependently on {where}.', 'where'),
  organTemplate('enlarged-1', 'enlargement', 'the {organ} {be} enlarged.'),
  organTemplate('enlarged-2', 'enlargement', 'there is enlargement of the {organ}.'),
  organTemplate('enlarged-3', 'enlargement', 'the {organ} {be} increased in size.'),
  phaseTemplate('phase-nc-1', 'non-contrast', 'no intravenous contrast was given.'),
  phaseTemplate('phase-nc-2', 'non-contrast', 'this is an unenhanced study.'),
  phaseTemplate('phase-nc-3', 'non-contrast', 'the examination was performed without contrast.'),
  phaseTemplate('phase-a-1', 'arterial', 'images were obtained in the arterial phase.'),
  phaseTemplate('phase-a-2', 'arterial', 'this is an arterial-phase study.'),
  phaseTemplate('phase-a-3', 'arterial', 'the aorta shows bright arterial-phase enhancement.'),
  phaseTemplate('phase-pv-1', 'portal-venous', 'images were obtained in the portal venous phase.'),
  phaseTemplate('phase-pv-2', 'portal-venous', 'this is a portal-venous-phase study.'),
  phaseTemplate('phase-pv-3', 'portal-venous', 'the portal vein and liver are enhanced in the venous phase.'),
  organTemplate('normal-1', 'normal', 'the {organ} {be} unremarkable.'),
  organTemplate('normal-2', 'normal', 'the {organ} {be} normal in appearance.'),
  organTemplate('normal-3', 'normal', 'no abnormality of the {organ} is seen.'),
];

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const alt = (xs: Iterable<string>) => [...new Set(xs)].sort((a, b) => b.length - a.length).map(escape).join('|');
const SLOT_PATTERNS: Record<string, string> = {
  organ: alt(NAME_TO_ORGAN.keys()),
  density: alt([...Object.values(DENSITY_WORDS.CT), ...Object.values(DENSITY_WORDS.MR)].flat()),
  mm: '[1-9][0-9]{0,2}',
  count: alt(COUNT_WORDS.slice(1)),
  side: alt(Object.values(SIDE_ADJ)),
  where: alt(Object.values(SIDE_WHERE)),
  be: 'is|are',
};
const COMPILED = TEMPLATES.map((t) => ({
  t,
  re: new RegExp(`^${t.text.split(/(\{\w+\})/).map((part) => {
    const m = /^\{(\w+)\}$/.exec(part);
    return m ? `(?<${m[1]}>${SLOT_PATTERNS[m[1]]})` : escape(part);
  }).join('')}$`, 'i'),
}));

/** Write one fact as a sentence, the paraphrase chosen by `pick` (the generator's seeded stream). */
export function writeFact(f: Fact, pick: <T>(xs: readonly T[]) => T, modality: 'CT' | 'MR' = 'CT'): string {
  const options = TEMPLATES.map((t) => ({ t, slots: t.fill(f, pick, modality) })).filter((x) => x.slots !== null);
  if (options.length === 0) throw new Error(`no template writes the fact ${JSON.stringify(f)}`);
  const { t, slots } = pick(options);
  const s = slots as Slots;
  if ('organ' in f && s.organ === '') s.organ = organName(f.organ, pick);
  const text = t.text.replace(/\{(\w+)\}/g, (_, k: string) => s[k]);
  return text[0].toUpperCase() + text.slice(1);
}

/** Split a report into sentences (every template ends with a full stop). */
export function sentences(report: string): string[] {
  return report.replace(/\s+/g, ' ').trim().split(/(?<=[.!?])\s+/).map((s) => s.trim()).filter(Boolean);
}

export interface ParsedReport {
  facts: Fact[];
  /** Sentences that match no template (kept so a metric can report how much it could not read). */
  unparsed: string[];
}

/** The inverse of the grammar: facts from a report (any region). */
export function parseReport(report: string): ParsedReport {
  const facts: Fact[] = [];
  const unparsed: string[] = [];
  for (const s of sentences(report)) {
    const hit = COMPILED.map(({ t, re }) => ({ t, m: re.exec(s) })).find((x) => x.m !== null);
    if (!hit) { unparsed.push(s); continue; }
    facts.push(hit.t.read({ ...(hit.m!.groups ?? {}) }));
  }
  return { facts, unparsed };
}

/** Atomic facts, the unit fact-f1 counts: `category` + a key naming what must match. */
export function factAtoms(facts: readonly Fact[]): Array<{ category: F1Category; key: string }> {
  const out: Array<{ category: F1Category; key: string }> = [];
  for (const f of facts) {
    switch (f.category) {
      case 'lesion':
        out.push({ category: 'lesion', key: f.organ });
        out.push({ category: 'lesion-size', key: `${f.organ}|${sizeBin(f.sizeMm).id}` });
        out.push({ category: 'lesion-density', key: `${f.organ}|${f.density}` });
        out.push({ category: 'lesion-count', key: `${f.organ}|${f.count}` });
        break;
      case 'effusion': out.push({ category: 'effusion', key: f.side }); break;
      case 'phase': out.push({ category: 'phase', key: f.phase }); break;
      default: out.push({ category: f.category, key: f.organ });
    }
  }
  return out;
}

export interface F1Score { tp: number; fp: number; fn: number; precision: number | null; recall: number | null; f1: number | null }
export interface FactF1Result {
  /** Micro-averaged over all samples, per category; f1 null where neither side has a fact of it. */
  perCategory: Record<F1Category, F1Score>;
  /** Micro over every atom of every category. */
  overall: F1Score;
  /** Sentences of the candidates no template matched. */
  unparsed: number;
}

function score(tp: number, fp: number, fn: number): F1Score {
  const precision = tp + fp > 0 ? tp / (tp + fp) : null;
  const recall = tp + fn > 0 ? tp / (tp + fn) : null;
  const f1 = tp + fp + fn === 0 ? null : (2 * tp) / (2 * tp + fp + fn);
  return { tp, fp, fn, precision, recall, f1 };
}

/**
 * fact-f1: for each sample, the reference facts against the facts parsed from the candidate report (or
 * given facts); atoms are compared as sets per sample, counts summed over samples (micro), per category.
 */
export function factF1(samples: ReadonlyArray<{ reference: readonly Fact[] | string; candidate: readonly Fact[] | string }>): FactF1Result {
  const counts = Object.fromEntries(FACT_F1_CATEGORIES.map((c) => [c, { tp: 0, fp: 0, fn: 0 }])) as Record<F1Category, { tp: number; fp: number; fn: number }>;
  let unparsed = 0;
  const asFacts = (x: readonly Fact[] | string, count: boolean) => {
    if (typeof x !== 'string') return x;
    const p = parseReport(x);
    if (count) unparsed += p.unparsed.length;
    return p.facts;
  };
  for (const s of samples) {
    const ref = new Set(factAtoms(asFacts(s.reference, false)).map((a) => `${a.category}\u0000${a.key}`));
    const cand = new Set(factAtoms(asFacts(s.candidate, true)).map((a) => `${a.category}\u0000${a.key}`));
    for (const a of cand) counts[a.split('\u0000')[0] as F1Category][ref.has(a) ? 'tp' : 'fp']++;
    for (const a of ref) if (!cand.has(a)) counts[a.split('\u0000')[0] as F1Category].fn++;
  }
  const perCategory = Object.fromEntries(FACT_F1_CATEGORIES.map((c) => [c, score(counts[c].tp, counts[c].fp, counts[c].fn)])) as Record<F1Category, F1Score>;
  const tot = FACT_F1_CATEGORIES.reduce((acc, c) => ({ tp: acc.tp + counts[c].tp, fp: acc.fp + counts[c].fp, fn: acc.fn + counts[c].fn }), { tp: 0, fp: 0, fn: 0 });
  return { perCategory, overall: score(tot.tp, tot.fp, tot.fn), unparsed };
}
