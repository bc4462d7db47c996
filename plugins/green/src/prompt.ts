/**
 * The judge's prompt. GREEN's judge models (GREEN-RadLlama2-7b, GREEN-MM-RadLLaMA-7b) were fine-tuned on
 * one fixed instruction, so a reworded prompt would measure something else — but that instruction is
 * GREEN's text, not ours, and llmed does not ship it. It is read from the judge's folder instead:
 * `<judge>/green_prompt.txt`, the instruction exactly as green_score builds it (Stanford-AIMI/GREEN,
 * green_score/utils.py `make_prompt`), with `{reference}` and `{candidate}` where the two reports go.
 * Each report is cut to its first `maxWords` words first (green_score: 300).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LlmedError } from '@llmed/core';

export const PROMPT_FILE = 'green_prompt.txt';

export function truncateWords(text: string, maxWords: number): string {
  return text.split(/\s+/).filter((w) => w.length > 0).slice(0, maxWords).join(' ');
}

/** The judge folder's prompt template, or undefined when the folder has none. */
export function readPromptTemplate(judgeFolder: string): string | undefined {
  const file = join(judgeFolder, PROMPT_FILE);
  if (!existsSync(file)) return undefined;
  const template = readFileSync(file, 'utf8');
  for (const mark of ['{reference}', '{candidate}']) {
    if (template.split(mark).length !== 2) throw new LlmedError('plugin', `${PROMPT_FILE} must hold ${mark} exactly once`, { where: file, hint: "put GREEN's instruction (green_score make_prompt) there with {reference} and {candidate} where the reports go" });
  }
  return template;
}

export function greenPrompt(template: string, reference: string, candidate: string, maxWords = 300): string {
  return template.replace('{reference}', () => truncateWords(reference, maxWords)).replace('{candidate}', () => truncateWords(candidate, maxWords));
}
