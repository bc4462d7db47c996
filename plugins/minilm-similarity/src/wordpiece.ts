/**
 * BERT's uncased WordPiece tokeniser (what all-MiniLM-L6-v2's tokenizer.json describes: BertNormalizer
 * with lower-casing and accent stripping, BertPreTokenizer, WordPiece with "##" continuations and
 * [UNK] for words over 100 characters or without a piece split), from the model's vocab.txt.
 */
import { readFileSync } from 'node:fs';

const isPunct = (cp: number, ch: string) => (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126) || /\p{P}/u.test(ch);
const isCjk = (cp: number) => (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f)
  || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
const isControl = (ch: string) => ch !== '\t' && ch !== '\n' && ch !== '\r' && /\p{C}/u.test(ch);
const isSpace = (ch: string) => ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || /\p{Zs}/u.test(ch);

export class WordPiece {
  readonly vocab = new Map<string, number>();
  readonly cls: number;
  readonly sep: number;
  readonly unk: number;

  constructor(vocabFile: string) {
    readFileSync(vocabFile, 'utf8').split('\n').forEach((t, i) => { if (t.length && !this.vocab.has(t)) this.vocab.set(t, i); });
    this.cls = this.vocab.get('[CLS]')!;
    this.sep = this.vocab.get('[SEP]')!;
    this.unk = this.vocab.get('[UNK]')!;
  }

  /** Normalise (drop NUL/U+FFFD/control characters, map whitespace to spaces, space out CJK ideographs, lower-case, strip accents) and split into words and punctuation. */
  words(text: string): string[] {
    let s = '';
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      if (cp === 0 || cp === 0xfffd || isControl(ch)) continue;
      s += isSpace(ch) ? ' ' : isCjk(cp) ? ` ${ch} ` : ch;
    }
    s = s.toLowerCase().normalize('NFD').replace(/\p{Mn}/gu, '');
    const out: string[] = [];
    for (const w of s.split(' ')) {
      let cur = '';
      for (const ch of w) {
        if (isPunct(ch.codePointAt(0)!, ch)) { if (cur) out.push(cur); out.push(ch); cur = ''; } else cur += ch;
      }
      if (cur) out.push(cur);
    }
    return out;
  }

  /** Greedy longest-match-first pieces of one word. */
  pieces(word: string): number[] {
    const chars = [...word];
    if (chars.length > 100) return [this.unk];
    const ids: number[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let id: number | undefined;
      while (start < end) {
        const sub = (start > 0 ? '##' : '') + chars.slice(start, end).join('');
        id = this.vocab.get(sub);
        if (id !== undefined) break;
        end--;
      }
      if (id === undefined) return [this.unk];
      ids.push(id);
      start = end;
    }
    return ids;
  }

  /** [CLS] pieces… [SEP], cut to maxTokens in all (the tail of a long text is dropped, as truncation does). */
  encode(text: string, maxTokens = 256): number[] {
    const ids = this.words(text).flatMap((w) => this.pieces(w));
    return [this.cls, ...ids.slice(0, Math.max(0, maxTokens - 2)), this.sep];
  }
}
