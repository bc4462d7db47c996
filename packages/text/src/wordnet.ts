/**
 * Synonyms from Princeton WordNet 3.0 database files (Debian's `wordnet-base`: /usr/share/wordnet), read
 * the way nltk's WordNetCorpusReader reads them, for METEOR's synonym stage: `synonyms(word)` is the set
 * of lemma names of `wordnet.synsets(word)` over nouns, verbs, adjectives and adverbs, each pos first
 * reduced to its base forms by nltk's `_morphy` (the exception list, else one pass of the suffix rules,
 * keeping forms present in that pos's index). Lemma names keep WordNet's case and underscores, and lose
 * adjective position markers such as "(a)", as nltk's do.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_WORDNET = '/usr/share/wordnet';
const POS = [['n', 'noun'], ['v', 'verb'], ['a', 'adj'], ['r', 'adv']] as const;
type Pos = (typeof POS)[number][0];

/** nltk's MORPHOLOGICAL_SUBSTITUTIONS, in its order. */
const SUBSTITUTIONS: Record<Pos, [string, string][]> = {
  n: [['s', ''], ['ses', 's'], ['ves', 'f'], ['xes', 'x'], ['zes', 'z'], ['ches', 'ch'], ['shes', 'sh'], ['men', 'man'], ['ies', 'y']],
  v: [['s', ''], ['ies', 'y'], ['es', 'e'], ['es', ''], ['ed', 'e'], ['ed', ''], ['ing', 'e'], ['ing', '']],
  a: [['er', ''], ['est', ''], ['er', 'e'], ['est', 'e']],
  r: [],
};

export function wordnetFiles(folder: string): string[] {
  return POS.flatMap(([, f]) => [`index.${f}`, `data.${f}`, `${f}.exc`]).map((f) => join(folder, f));
}

/** Whether `folder` holds the WordNet database files this reader needs. */
export function hasWordnet(folder = DEFAULT_WORDNET): boolean {
  return wordnetFiles(folder).every((f) => existsSync(f));
}

export class WordNet {
  private readonly index = new Map<string, Partial<Record<Pos, number[]>>>();
  private readonly exceptions: Record<Pos, Map<string, string[]>> = { n: new Map(), v: new Map(), a: new Map(), r: new Map() };
  private readonly data = {} as Record<Pos, Buffer>;
  private readonly lemmaCache = new Map<string, string[]>();
  private readonly synonymCache = new Map<string, Set<string>>();

  constructor(readonly folder = DEFAULT_WORDNET) {
    for (const [pos, name] of POS) {
      for (const line of readFileSync(join(folder, `index.${name}`), 'latin1').split('\n')) {
        if (line.length === 0 || line.startsWith(' ')) continue; // the licence header lines start with a space
        const t = line.split(' ');
        const nSynsets = Number(t[2]);
        const nPointers = Number(t[3]);
        const offsets = t.slice(6 + nPointers, 6 + nPointers + nSynsets).map(Number);
        const e = this.index.get(t[0]) ?? {};
        e[pos] = offsets;
        this.index.set(t[0], e);
      }
      for (const line of readFileSync(join(folder, `${name}.exc`), 'latin1').split('\n')) {
        const t = line.split(/\s+/).filter(Boolean);
        if (t.length) this.exceptions[pos].set(t[0], t.slice(1));
      }
      this.data[pos] = readFileSync(join(folder, `data.${name}`));
    }
  }

  /** nltk `_morphy(form, pos)`: base forms of `form` that the pos's index holds, in nltk's order. */
  morphy(form: string, pos: Pos): string[] {
    const exc = this.exceptions[pos].get(form);
    const forms = exc ?? SUBSTITUTIONS[pos].filter(([old]) => form.endsWith(old)).map(([old, rep]) => form.slice(0, form.length - old.length) + rep);
    const out: string[] = [];
    for (const f of [form, ...forms]) if (this.index.get(f)?.[pos] && !out.includes(f)) out.push(f);
    return out;
  }

  /** Lemma names of the synset at byte `offset` of data.<pos>. */
  private lemmas(pos: Pos, offset: number): string[] {
    const key = `${pos}${offset}`;
    const hit = this.lemmaCache.get(key);
    if (hit) return hit;
    const buf = this.data[pos];
    const end = buf.indexOf(0x0a, offset);
    const t = buf.toString('latin1', offset, end < 0 ? buf.length : end).split(' ');
    // offset lex_filenum ss_type w_cnt(hex) then w_cnt × (word lex_id)
    const n = parseInt(t[3], 16);
    const names: string[] = [];
    for (let k = 0; k < n; k++) names.push(t[4 + 2 * k].replace(/\(.*\)$/, ''));
    this.lemmaCache.set(key, names);
    return names;
  }

  /** Lemma names of all synsets of `word` (lower-cased first, as nltk's `synsets`). */
  lemmaNames(word: string): string[] {
    const w = word.toLowerCase();
    const out: string[] = [];
    for (const [pos] of POS) for (const form of this.morphy(w, pos)) for (const off of this.index.get(form)![pos]!) out.push(...this.lemmas(pos, off));
    return out;
  }

  /** METEOR's synonym set of a word: its WordNet lemma names without multi-word ones, plus the word. */
  meteorSynonyms(word: string): Set<string> {
    let s = this.synonymCache.get(word);
    if (!s) {
      s = new Set(this.lemmaNames(word).filter((n) => !n.includes('_')));
      s.add(word);
      this.synonymCache.set(word, s);
    }
    return s;
  }
}

const readers = new Map<string, WordNet>();
/** One reader per folder per process (loading the index takes about a second). */
export function wordnet(folder = DEFAULT_WORDNET): WordNet {
  let r = readers.get(folder);
  if (!r) { r = new WordNet(folder); readers.set(folder, r); }
  return r;
}
