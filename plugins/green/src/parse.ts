/**
 * GREEN's judge answer → error counts → score (Ostmeier et al. 2024; spec §3.8).
 *
 * The judge writes sections `[Category]: text`, a section running to the first blank line (or the end).
 * `[Clinically Significant Errors]` holds lines `(a) <type>: <count>. ...` … `(f) ...` (or `(1)` … `(6)`
 * where the judge numbered them instead); `[Matched Findings]` starts `<count>. ...`; a section starting
 * "No" counts 0. GREEN = matched / (matched + Σ significant errors), 0 when matched = 0. Insignificant
 * errors are parsed but not scored.
 *
 * Unlike the released green_score code, which reads a missing section as zero counts and so scores an
 * answer it could not read as 0, an answer is *unparseable* here when the significant-errors or the
 * matched-findings section is missing, or when a present section has neither "No" nor any count to read.
 * Unparseable answers get no score (NaN) and are counted; `asReleased` gives green_score's number.
 */
export const GREEN_CATEGORIES = ['Clinically Significant Errors', 'Clinically Insignificant Errors', 'Matched Findings'] as const;
/** The six error types, in the order of the counts. */
export const GREEN_ERROR_TYPES = [
  'false report of a finding',
  'missing a finding present in the reference',
  "misidentification of a finding's location",
  "misassessment of a finding's severity",
  "mentioning a comparison that isn't in the reference",
  'omitting a comparison to a prior study',
] as const;

export interface GreenCounts {
  significant: number[];
  insignificant: number[];
  matched: number;
}

export type GreenParse = { ok: true; counts: GreenCounts } | { ok: false; reason: string };

/** The text of section `[name]:` up to the next blank line, or undefined when the section is absent. */
function section(text: string, name: string): string | undefined {
  const start = text.indexOf(`[${name}]:`);
  if (start < 0) return undefined;
  const body = text.slice(start + name.length + 3).replace(/^\s+/, '');
  const end = body.search(/\n[ \t]*\n/);
  return end < 0 ? body : body.slice(0, end);
}

/** Counts of the six error types in a section; undefined when no typed item carries a count. */
function errorCounts(body: string): number[] | undefined {
  // Lettered items "(a) ..." anywhere on a line; the numbered form "(1) ..." only when there is no
  // lettered item at all (green_score's order).
  let items = [...body.matchAll(/\(([a-f])\) [^\n]*/g)];
  let labels = 'abcdef';
  if (items.length === 0) {
    items = [...body.matchAll(/\(([1-6])\) [^\n]*/g)];
    labels = '123456';
  }
  const counts = [0, 0, 0, 0, 0, 0];
  let found = false;
  for (const m of items) {
    const n = /: (\d+)\./.exec(m[0]);
    if (!n) continue;
    counts[labels.indexOf(m[1])] = Number(n[1]);
    found = true;
  }
  return found ? counts : undefined;
}

export function parseGreenAnswer(text: string): GreenParse {
  const sig = section(text, GREEN_CATEGORIES[0]);
  if (sig === undefined) return { ok: false, reason: `no [${GREEN_CATEGORIES[0]}] section` };
  const matchedText = section(text, GREEN_CATEGORIES[2]);
  if (matchedText === undefined) return { ok: false, reason: `no [${GREEN_CATEGORIES[2]}] section` };
  let significant = [0, 0, 0, 0, 0, 0];
  if (!sig.startsWith('No')) {
    const c = errorCounts(sig);
    if (!c) return { ok: false, reason: `[${GREEN_CATEGORIES[0]}] has no "(a) <type>: <count>." line` };
    significant = c;
  }
  let matched = 0;
  if (!matchedText.startsWith('No')) {
    const m = /^(\d+)\./.exec(matchedText);
    if (!m) return { ok: false, reason: `[${GREEN_CATEGORIES[2]}] does not start with "<count>."` };
    matched = Number(m[1]);
  }
  const ins = section(text, GREEN_CATEGORIES[1]);
  const insignificant = ins === undefined || ins.startsWith('No') ? [0, 0, 0, 0, 0, 0] : errorCounts(ins) ?? [0, 0, 0, 0, 0, 0];
  return { ok: true, counts: { significant, insignificant, matched } };
}

export function greenScore(c: GreenCounts): number {
  if (c.matched === 0) return 0;
  return c.matched / (c.matched + c.significant.reduce((a, b) => a + b, 0));
}

/**
 * green_score's own reading (green.py parse_error_counts / compute_green): a missing section or count is 0,
 * so an unreadable answer scores 0. Only to show the difference; never the headline value.
 */
export function greenAsReleased(text: string): number {
  const sig = section(text, GREEN_CATEGORIES[0]);
  const significant = sig === undefined || sig.startsWith('No') ? [0, 0, 0, 0, 0, 0] : errorCounts(sig) ?? [0, 0, 0, 0, 0, 0];
  const m = section(text, GREEN_CATEGORIES[2]);
  const matched = m === undefined || m.startsWith('No') ? 0 : Number(/^(\d+)\./.exec(m)?.[1] ?? 0);
  return greenScore({ significant, insignificant: [], matched });
}
