/**
 * A 5×7 bitmap font (upper-case letters, digits, common punctuation) so pictures can carry their own
 * titles, tick labels and label names without a font file or a text-rendering dependency. Lower-case
 * input is drawn in upper case; characters without a glyph are drawn as '?'.
 *
 * Each glyph is 7 rows of 5 columns, '#' = ink. A character advances 6 pixels (one blank column) and a
 * line is 9 pixels high (two blank rows), times the integer scale.
 */

const GLYPHS: Record<string, string> = {
  A: '.###. #...# #...# ##### #...# #...# #...#',
  B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.',
  D: '###.. #..#. #...# #...# #...# #..#. ###..',
  E: '##### #.... #.... ####. #.... #.... #####',
  F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####',
  H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.',
  P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.#### #.... #.... .###. ....# ....# ####.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.',
  V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..',
  Z: '##### ....# ...#. ..#.. .#... #.... #####',
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '##### ...#. ..#.. ...#. ....# #...# .###.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ...#. .##..',
  ' ': '..... ..... ..... ..... ..... ..... .....',
  '.': '..... ..... ..... ..... ..... .##.. .##..',
  ',': '..... ..... ..... ..... .##.. ..#.. .#...',
  '-': '..... ..... ..... ##### ..... ..... .....',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
  ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  '/': '..... ....# ...#. ..#.. .#... #.... .....',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#.',
  ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#...',
  '[': '.###. .#... .#... .#... .#... .#... .###.',
  ']': '.###. ...#. ...#. ...#. ...#. ...#. .###.',
  '%': '##... ##..# ...#. ..#.. .#... #..## ...##',
  '_': '..... ..... ..... ..... ..... ..... #####',
  '=': '..... ..... ##### ..... ##### ..... .....',
  '<': '...#. ..#.. .#... #.... .#... ..#.. ...#.',
  '>': '.#... ..#.. ...#. ....# ...#. ..#.. .#...',
  '≤': '...#. ..#.. .#... ..#.. ...#. ..... #####',
  '≥': '.#... ..#.. ...#. ..#.. .#... ..... #####',
  '|': '..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  '*': '..... ..#.. #.#.# .###. #.#.# ..#.. .....',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#..',
  '!': '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..',
  "'": '..#.. ..#.. .#... ..... ..... ..... .....',
  '×': '..... #...# .#.#. ..#.. .#.#. #...# .....',
};

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
export const CHAR_ADVANCE = 6;
export const LINE_HEIGHT = 9;

/** Glyph rows as bit masks (bit 4 = leftmost column). */
const BITMAPS: Map<string, Uint8Array> = new Map(
  Object.entries(GLYPHS).map(([ch, rows]) => {
    const bits = rows.split(' ').map((r) => [...r].reduce((acc, c) => (acc << 1) | (c === '#' ? 1 : 0), 0));
    if (bits.length !== GLYPH_HEIGHT) throw new Error(`font: glyph '${ch}' has ${bits.length} rows`);
    return [ch, Uint8Array.from(bits)];
  }),
);

/** The bitmap of one character (upper-cased; '?' when the font lacks it). */
export function glyph(ch: string): Uint8Array {
  return BITMAPS.get(ch) ?? BITMAPS.get(ch.toUpperCase()) ?? BITMAPS.get('?')!;
}

/** Characters the font draws as themselves (after upper-casing). */
export function hasGlyph(ch: string): boolean {
  return BITMAPS.has(ch) || BITMAPS.has(ch.toUpperCase());
}

/** Width in pixels of `text` drawn on one line at `scale` (no trailing blank column). */
export function textWidth(text: string, scale = 1): number {
  const n = [...text].length;
  return n === 0 ? 0 : (n * CHAR_ADVANCE - 1) * scale;
}

/** Height in pixels of one line of text at `scale` (glyph rows only). */
export function textHeight(scale = 1): number {
  return GLYPH_HEIGHT * scale;
}
