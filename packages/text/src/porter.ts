/**
 * The Porter stemmer in nltk's default mode (`PorterStemmer()`, mode NLTK_EXTENSIONS, nltk 3.10), which
 * nltk's METEOR uses for its stem stage. nltk departs from Porter's 1980 paper in a few rules (marked
 * "nltk:" below); following them is what makes the METEOR values equal nltk's.
 */
const VOWELS = new Set(['a', 'e', 'i', 'o', 'u']);

/** Irregular forms nltk maps directly. */
const POOL = new Map<string, string>();
for (const [stem, forms] of Object.entries({
  sky: ['sky', 'skies'], die: ['dying'], lie: ['lying'], tie: ['tying'], news: ['news'], inning: ['innings', 'inning'],
  outing: ['outings', 'outing'], canning: ['cannings', 'canning'], howe: ['howe'], proceed: ['proceed'], exceed: ['exceed'], succeed: ['succeed'],
})) for (const f of forms) POOL.set(f, stem);

/** Whether each letter is a consonant: a vowel letter never is; y is one unless it follows a consonant. */
function consonants(w: string): boolean[] {
  const out: boolean[] = [];
  for (let i = 0; i < w.length; i++) {
    const ch = w[i];
    out.push(VOWELS.has(ch) ? false : ch === 'y' ? (i === 0 ? true : !out[i - 1]) : true);
  }
  return out;
}
const isCons = (w: string, i: number) => consonants(w)[i];
/** m in [C](VC)^m[V]: the number of vowel→consonant transitions. */
function measure(stem: string): number {
  const c = consonants(stem);
  let m = 0;
  for (let i = 1; i < c.length; i++) if (!c[i - 1] && c[i]) m++;
  return m;
}
const hasVowel = (stem: string) => consonants(stem).some((x) => !x);
const endsDouble = (w: string) => w.length >= 2 && w[w.length - 1] === w[w.length - 2] && isCons(w, w.length - 1);
function endsCvc(w: string): boolean {
  const n = w.length;
  if (n >= 3 && isCons(w, n - 3) && !isCons(w, n - 2) && isCons(w, n - 1) && !'wxy'.includes(w[n - 1])) return true;
  // nltk: a two-letter vowel-consonant word also counts.
  return n === 2 && !isCons(w, 0) && isCons(w, 1);
}

type Rule = [suffix: string, replacement: string, condition: ((stem: string) => boolean) | null];

/** The first rule whose suffix matches decides: applied if its condition holds, else the word is kept. */
function applyRules(word: string, rules: Rule[]): string {
  for (const [suffix, rep, cond] of rules) {
    if (suffix === '*d' && endsDouble(word)) {
      const stem = word.slice(0, -2);
      return !cond || cond(stem) ? stem + rep : word;
    }
    if (word.endsWith(suffix)) {
      const stem = suffix ? word.slice(0, -suffix.length) : word;
      return !cond || cond(stem) ? stem + rep : word;
    }
  }
  return word;
}

const m0 = (s: string) => measure(s) > 0;
const m1 = (s: string) => measure(s) > 1;

function step1a(w: string): string {
  if (w.endsWith('ies') && w.length === 4) return w.slice(0, -3) + 'ie'; // nltk: "dies" → "die"
  return applyRules(w, [['sses', 'ss', null], ['ies', 'i', null], ['ss', 'ss', null], ['s', '', null]]);
}

function step1b(w: string): string {
  if (w.endsWith('ied')) return w.slice(0, -3) + (w.length === 4 ? 'ie' : 'i'); // nltk
  if (w.endsWith('eed')) {
    const stem = w.slice(0, -3);
    return measure(stem) > 0 ? stem + 'ee' : w;
  }
  let mid: string | undefined;
  for (const suf of ['ed', 'ing']) {
    if (w.endsWith(suf) && hasVowel(w.slice(0, -suf.length))) { mid = w.slice(0, -suf.length); break; }
  }
  if (mid === undefined) return w;
  const last = mid[mid.length - 1];
  return applyRules(mid, [
    ['at', 'ate', null], ['bl', 'ble', null], ['iz', 'ize', null],
    ['*d', last, () => !'lsz'.includes(last)],
    ['', 'e', (s) => measure(s) === 1 && endsCvc(s)],
  ]);
}

// nltk: y → i only after a consonant that is not the first letter.
const step1c = (w: string) => applyRules(w, [['y', 'i', (s) => s.length > 1 && isCons(s, s.length - 1)]]);

function step2(w: string): string {
  if (w.endsWith('alli') && m0(w.slice(0, -4))) return step2(w.slice(0, -4) + 'al'); // nltk
  return applyRules(w, [
    ['ational', 'ate', m0], ['tional', 'tion', m0], ['enci', 'ence', m0], ['anci', 'ance', m0], ['izer', 'ize', m0],
    ['bli', 'ble', m0], ['alli', 'al', m0], ['entli', 'ent', m0], ['eli', 'e', m0], ['ousli', 'ous', m0],
    ['ization', 'ize', m0], ['ation', 'ate', m0], ['ator', 'ate', m0], ['alism', 'al', m0], ['iveness', 'ive', m0],
    ['fulness', 'ful', m0], ['ousness', 'ous', m0], ['aliti', 'al', m0], ['iviti', 'ive', m0], ['biliti', 'ble', m0],
    ['fulli', 'ful', m0], ['logi', 'log', () => m0(w.slice(0, -3))], // nltk additions
  ]);
}

const step3 = (w: string) => applyRules(w, [['icate', 'ic', m0], ['ative', '', m0], ['alize', 'al', m0], ['iciti', 'ic', m0], ['ical', 'ic', m0], ['ful', '', m0], ['ness', '', m0]]);

const step4 = (w: string) => applyRules(w, [
  ['al', '', m1], ['ance', '', m1], ['ence', '', m1], ['er', '', m1], ['ic', '', m1], ['able', '', m1], ['ible', '', m1],
  ['ant', '', m1], ['ement', '', m1], ['ment', '', m1], ['ent', '', m1], ['ion', '', (s) => m1(s) && 'st'.includes(s[s.length - 1] ?? '')],
  ['ou', '', m1], ['ism', '', m1], ['ate', '', m1], ['iti', '', m1], ['ous', '', m1], ['ive', '', m1], ['ize', '', m1],
]);

function step5a(w: string): string {
  if (!w.endsWith('e')) return w;
  const stem = w.slice(0, -1);
  const m = measure(stem);
  return m > 1 || (m === 1 && !endsCvc(stem)) ? stem : w;
}

const step5b = (w: string) => applyRules(w, [['ll', 'l', () => measure(w.slice(0, -1)) > 1]]);

export function porterStem(word: string): string {
  const w = word.toLowerCase();
  const irregular = POOL.get(w);
  if (irregular !== undefined) return irregular;
  if (word.length <= 2) return w;
  return step5b(step5a(step4(step3(step2(step1c(step1b(step1a(w))))))));
}
