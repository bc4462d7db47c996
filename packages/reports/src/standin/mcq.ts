/**
 * Four-option multiple-choice questions from a sample's facts, on presence, side, lesion organ, size bin,
 * density, count and contrast phase. Every question has exactly one correct option by construction (the
 * distractors are values the facts rule out). Which letter holds the answer is decided afterwards for
 * the whole split (`balanceLetters`), so each question type has its answers spread evenly over A–D and a
 * model cannot score by always answering one letter.
 */
import { OPTION_LETTERS, type Letter, type VqaItem } from '../amos.ts';
import type { Anatomy } from './anatomy.ts';
import { SIZE_BINS, sizeBin, type Fact, type Phase } from './facts.ts';
import type { Rng } from './rng.ts';

export const QUESTION_TYPES = ['presence', 'side', 'lesion-organ', 'size', 'density', 'count', 'phase'] as const;
export type QuestionType = (typeof QUESTION_TYPES)[number];

/** A question before letters are assigned: the correct text and three distractors. */
export interface DraftQuestion {
  type: QuestionType;
  question: string;
  correct: string;
  distractors: [string, string, string];
}

const PHASE_TEXT: Record<Phase, string> = { 'non-contrast': 'non-contrast', arterial: 'arterial', 'portal-venous': 'portal venous' };
const CT_TYPES = ['a focal lesion', 'a calculus', 'a pleural effusion', 'an enlarged organ'] as const;

function three(rng: Rng, xs: readonly string[]): [string, string, string] {
  const s = rng.shuffle(xs);
  if (s.length < 3) throw new Error(`mcq: need three distractors, have ${s.length}`);
  return [s[0], s[1], s[2]];
}

export function draftQuestions(facts: readonly Fact[], anatomy: Anatomy, rng: Rng): DraftQuestion[] {
  const out: DraftQuestion[] = [];
  const lesion = facts.find((f) => f.category === 'lesion') as Extract<Fact, { category: 'lesion' }> | undefined;
  const organName = (key: string) => anatomy.organs.find((o) => o.key === key)!.names[0];

  if (anatomy.id === 'ct') {
    const present = new Set<string>();
    for (const f of facts) {
      if (f.category === 'lesion') present.add(CT_TYPES[0]);
      if (f.category === 'stone') present.add(CT_TYPES[1]);
      if (f.category === 'effusion') present.add(CT_TYPES[2]);
      if (f.category === 'enlargement') present.add(CT_TYPES[3]);
    }
    const absent = [...CT_TYPES.filter((t) => !present.has(t)), 'none of these'];
    if (present.size === 0) out.push({ type: 'presence', question: 'Which of these findings does the scan show?', correct: 'none of these', distractors: three(rng, CT_TYPES) });
    else out.push({ type: 'presence', question: 'Which of these findings does the scan show?', correct: rng.pick([...present]), distractors: three(rng, absent.filter((a) => a !== 'none of these').concat('none of these')) });
  } else {
    const hasLesion = Boolean(lesion), hasEnl = facts.some((f) => f.category === 'enlargement');
    const all = ['a focal lesion only', 'enlarged ventricles only', 'both a lesion and enlarged ventricles', 'neither'];
    const correct = hasLesion && hasEnl ? all[2] : hasLesion ? all[0] : hasEnl ? all[1] : all[3];
    out.push({ type: 'presence', question: 'Which of these describes the scan?', correct, distractors: three(rng, all.filter((a) => a !== correct)) });
  }

  const effusion = facts.find((f) => f.category === 'effusion') as Extract<Fact, { category: 'effusion' }> | undefined;
  const sided = facts.find((f) => (f.category === 'lesion' || f.category === 'stone') && anatomy.organs.find((o) => o.key === f.organ)?.side);
  if (effusion) {
    const all = ['left', 'right', 'both sides', 'neither side'];
    const correct = effusion.side === 'both' ? 'both sides' : effusion.side;
    out.push({ type: 'side', question: 'On which side is the pleural effusion?', correct, distractors: three(rng, all.filter((a) => a !== correct)) });
  } else if (sided && 'organ' in sided) {
    const side = anatomy.organs.find((o) => o.key === sided.organ)!.side!;
    const what = sided.category === 'lesion' ? 'focal lesion' : 'calculus';
    const all = ['left', 'right', 'both sides', 'neither side'];
    out.push({ type: 'side', question: `On which side is the ${what}?`, correct: side, distractors: three(rng, all.filter((a) => a !== side)) });
  }

  if (lesion) {
    const candidates = anatomy.organs.filter((o) => o.findings.includes('lesion') && o.key !== lesion.organ).map((o) => o.names[0]);
    out.push({ type: 'lesion-organ', question: 'Which organ contains the focal lesion?', correct: organName(lesion.organ), distractors: three(rng, candidates) });
    const bin = sizeBin(lesion.sizeMm);
    out.push({ type: 'size', question: 'How large is the largest focal lesion?', correct: bin.text, distractors: three(rng, SIZE_BINS.filter((b) => b.id !== bin.id).map((b) => b.text)) });
    const dens = anatomy.modality === 'CT' ? ['hypodense', 'hyperdense', 'isodense', 'fat-density'] : ['hypointense', 'hyperintense', 'isointense', 'signal void'];
    const correctD = dens[lesion.density === 'low' ? 0 : 1];
    out.push({ type: 'density', question: `How does the lesion appear relative to the ${organName(lesion.organ)}?`, correct: correctD, distractors: three(rng, dens.filter((d) => d !== correctD)) });
    const counts = ['one', 'two', 'three', 'four or more'];
    const correctC = counts[Math.min(lesion.count, 4) - 1];
    out.push({ type: 'count', question: `How many focal lesions are in the ${organName(lesion.organ)}?`, correct: correctC, distractors: three(rng, counts.filter((c) => c !== correctC)) });
  }

  const phase = facts.find((f) => f.category === 'phase') as Extract<Fact, { category: 'phase' }> | undefined;
  if (phase) {
    const all = [...Object.values(PHASE_TEXT), 'delayed'];
    out.push({ type: 'phase', question: 'In which contrast phase was the scan acquired?', correct: PHASE_TEXT[phase.phase], distractors: three(rng, all.filter((p) => p !== PHASE_TEXT[phase.phase])) });
  }
  return out;
}

/**
 * Letters for one split: per question type, a balanced sequence of answer letters (counts differ by at
 * most one), shuffled by the seed; the distractors fill the other letters in shuffled order.
 */
export function balanceLetters(drafts: ReadonlyArray<{ sample: string; q: DraftQuestion }>, rng: Rng): Array<{ sample: string; item: VqaItem }> {
  const byType = new Map<QuestionType, number[]>();
  drafts.forEach((d, n) => {
    const list = byType.get(d.q.type) ?? [];
    list.push(n);
    byType.set(d.q.type, list);
  });
  const letterOf = new Array<Letter>(drafts.length);
  for (const type of QUESTION_TYPES) {
    const idx = byType.get(type) ?? [];
    const start = rng.int(0, 3);
    const seq = idx.map((_, n) => OPTION_LETTERS[(start + n) % 4]);
    const shuffled = rng.shuffle(seq);
    idx.forEach((q, n) => { letterOf[q] = shuffled[n]; });
  }
  return drafts.map((d, n) => {
    const answer = letterOf[n];
    const others = rng.shuffle(d.q.distractors);
    const options = {} as Record<Letter, string>;
    let o = 0;
    for (const l of OPTION_LETTERS) options[l] = l === answer ? d.q.correct : others[o++];
    return { sample: d.sample, item: { question: d.q.question, options, answer, type: d.q.type } };
  });
}
