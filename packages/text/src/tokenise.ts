/**
 * Tokenisers shared by the text metrics. Every metric names the one it uses, because the same pair of
 * reports scores differently under different tokenisations (BLEU on "3.5cm" is one token or three).
 *
 * - `words` (llmed's default): lower-cased; runs of letters/digits are tokens, a decimal point or an
 *   apostrophe between two alphanumerics stays inside the token ("3.5", "patient's"), every other
 *   non-space character is a token of its own. Pure function of the string, no model or data file.
 * - `rouge`: rouge-score's default tokeniser (`rouge_score.tokenize`, stemming off): lower-cased, every
 *   character outside [a-z0-9] becomes a space, split on whitespace. Punctuation and non-ASCII letters vanish.
 * - `13a`: sacrebleu's default (mteval-v13a) tokeniser, case kept: punctuation split off except a period or
 *   comma between digits and a dash after a digit; `lowercase` to fold case.
 * - `whitespace`: split on whitespace only (text already tokenised upstream).
 */
export const TOKENISERS = ['words', 'rouge', '13a', 'whitespace'] as const;
export type Tokeniser = (typeof TOKENISERS)[number];

/** JSON Schema of a metric's `tokenise` option, one text so all metrics describe it the same way. */
export const tokeniseOption = (def: Tokeniser) => ({
  enum: [...TOKENISERS],
  default: def,
  description: "'words': lower-cased alphanumeric runs (keeping 3.5 and patient's whole) and single punctuation marks; 'rouge': rouge-score's tokeniser (lower-case, non-[a-z0-9] dropped); '13a': sacrebleu's mteval-v13a; 'whitespace': split on spaces",
});

const WORD = /[\p{L}\p{N}]+(?:['.][\p{L}\p{N}]+)*|[^\s\p{L}\p{N}]/gu;

export function tokenise(text: string, how: Tokeniser = 'words', opts: { lowercase?: boolean } = {}): string[] {
  switch (how) {
    case 'words':
      return text.toLowerCase().match(WORD) ?? [];
    case 'rouge':
      return text.toLowerCase().replace(/[^a-z0-9]+/g, ' ').split(/\s+/).filter((t) => t.length > 0);
    case '13a': {
      const t = tokenise13a(text);
      return opts.lowercase ? t.map((w) => w.toLowerCase()) : t;
    }
    case 'whitespace':
      return text.split(/\s+/).filter((t) => t.length > 0);
  }
}

/** sacrebleu's 13a: the mteval-v13a.pl rules (sacrebleu.tokenizers.tokenizer_13a), in the same order. */
export function tokenise13a(line: string): string[] {
  let s = line.replace(/<skipped>/g, '').replace(/-\n/g, '').replace(/\n/g, ' ');
  if (s.includes('&')) s = s.replace(/&quot;/g, '"').replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
  s = ` ${s} `;
  // ASCII punctuation except the apostrophe, period, comma and dash: always its own token.
  s = s.replace(/([{-~[-` -&(-+:-@/])/g, ' $1 ');
  // A period or comma is split off unless it sits between digits.
  s = s.replace(/([^0-9])([.,])/g, '$1 $2 ');
  s = s.replace(/([.,])([^0-9])/g, ' $1 $2');
  // A dash after a digit is split off.
  s = s.replace(/([0-9])(-)/g, '$1 $2 ');
  return s.split(/\s+/).filter((t) => t.length > 0);
}
