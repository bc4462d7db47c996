/**
 * A checkpoint's tokenizer in Node: `tokenizer.json` + `tokenizer_config.json` read by
 * @huggingface/tokenizers (pure JavaScript, pinned), so text goes to ids and back without Python. The
 * ids are cross-checked against Python's `tokenizers` on a corpus with the special tokens in tests.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { LlmedError } from '@llmed/core';

export interface TextTokenizer {
  /** Token ids of `text`; special tokens written in the text (`<|im_start|>`) are single ids. */
  encode(text: string): number[];
  /** Text of `ids`; `skipSpecial` drops special tokens such as the end-of-text marker. */
  decode(ids: readonly number[], skipSpecial?: boolean): string;
  /** Id of a token that must exist as one token (a special token), or an error naming the folder. */
  tokenId(token: string): number;
  readonly vocabSize: number;
}

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new LlmedError('checkpoint', `cannot read ${file}: ${(e as Error).message}`, { where: file, hint: 'the tokenizer files are written by `npm run setup` (checkpoint) or by `llmed export`' });
  }
}

/** Load the tokenizer of a checkpoint or export folder (it must hold tokenizer.json and tokenizer_config.json). */
export function loadTokenizer(folder: string): TextTokenizer {
  const files = ['tokenizer.json', 'tokenizer_config.json'].map((f) => join(folder, f));
  const absent = files.find((f) => !existsSync(f));
  if (absent) {
    throw new LlmedError('checkpoint', `${absent} is missing`, {
      where: folder,
      hint: 'a Hugging Face checkpoint folder needs tokenizer.json and tokenizer_config.json; for the demo checkpoint run `npm run setup`, which writes them from the GGUF file',
    });
  }
  const [json, config] = files.map(readJson);
  const tokenizer = new Tokenizer(json, config);
  const added = (json.added_tokens as { id: number; content: string }[] | undefined) ?? [];
  const vocab = ((json.model as { vocab?: Record<string, number> }).vocab) ?? {};
  const vocabSize = Math.max(Object.keys(vocab).length, ...added.map((t) => t.id + 1));
  return {
    vocabSize,
    encode: (text) => tokenizer.encode(text, { add_special_tokens: false }).ids,
    decode: (ids, skipSpecial = false) => tokenizer.decode([...ids], { skip_special_tokens: skipSpecial }),
    tokenId(token) {
      const ids = tokenizer.encode(token, { add_special_tokens: false }).ids;
      if (ids.length !== 1) throw new LlmedError('checkpoint', `'${token}' is not a single token of this tokenizer (it encodes to ${ids.length} ids)`, { where: folder });
      return ids[0];
    },
  };
}
