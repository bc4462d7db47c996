/**
 * green — GREEN (Ostmeier et al. 2024): an LLM judge counts the clinically significant errors of a
 * candidate report against its reference, and the matched findings; GREEN = matched / (matched + Σ
 * significant errors), 0 when nothing matched, per sample, averaged over the samples the judge answered
 * readably. The six significant-error types: (a) false report of a finding, (b) missing finding,
 * (c) wrong anatomic location, (d) wrong severity, (e) comparison not in the reference, (f) omitted
 * comparison to a prior study; insignificant errors are not scored.
 *
 * Variant: green_score's prompt (read from the judge folder, prompt.ts) and reading rules (parse.ts), reports cut to 300 words,
 * greedy decoding; but an answer the parser cannot read is counted in `unparseable` and left out of the
 * mean, where green_score scores it 0 (that number is output too, as `green-as-released`). The judge is a
 * model in a local folder (`judge`, relative to the workspace; GREEN-RadLlama2-7b, or GREEN-MM-RadLLaMA-7b
 * for out-of-chest text — the RadLlama2 judges were trained on chest X-ray reports); it is never
 * downloaded. Without it the metric is skipped with "no judge model at <path>".
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { definePlugin, LlmedError, pluginModule, type TextMetricContext, type TextMetricInput, type TextMetricResult, type TextMetricRuntime } from '@llmed/core';
import { greenAsReleased, greenScore, parseGreenAnswer } from './parse.ts';
import { greenPrompt, PROMPT_FILE, readPromptTemplate } from './prompt.ts';

export * from './parse.ts';
export * from './prompt.ts';

export interface GreenOptions { judge: string; maxWords: number; maxNewTokens: number; batchSize: number; device: string }

const PYTHON_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../python');

/** GREEN from the judge's answers, one per sample. */
export function greenFromAnswers(answers: readonly string[]): TextMetricResult {
  const perSample: number[] = [];
  let matched = 0;
  let significant = 0;
  let ok = 0;
  for (const a of answers) {
    const p = parseGreenAnswer(a);
    if (!p.ok) { perSample.push(NaN); continue; }
    ok++;
    matched += p.counts.matched;
    significant += p.counts.significant.reduce((x, y) => x + y, 0);
    perSample.push(greenScore(p.counts));
  }
  const green = ok ? perSample.filter(Number.isFinite).reduce((x, y) => x + y, 0) / ok : NaN;
  return {
    value: green,
    outputs: {
      green,
      'green-as-released': answers.length ? answers.reduce((s, a) => s + greenAsReleased(a), 0) / answers.length : NaN,
      'mean-matched': ok ? matched / ok : NaN,
      'mean-significant-errors': ok ? significant / ok : NaN,
    },
    perSample,
    unit: 'fraction',
    higherIsBetter: true,
    counts: { unparseable: answers.length - ok, answered: answers.length },
  };
}

export function judgeFolder(o: GreenOptions, ctx?: TextMetricContext): string {
  return isAbsolute(o.judge) ? o.judge : resolve(ctx?.workspaceRoot ?? process.cwd(), o.judge);
}

/** The judge's answers to the prompts, from the Python runner (python/llmed_green/judge.py). */
function runJudge(folder: string, prompts: string[], o: GreenOptions, ctx?: TextMetricContext): string[] {
  // The bridge's rule: $PYTHON_BIN, else the workspace's .venv.
  const root = ctx?.workspaceRoot ?? process.cwd();
  const py = process.env.PYTHON_BIN ?? join(root, '.venv', 'bin', 'python');
  if (!process.env.PYTHON_BIN && !existsSync(py)) throw new LlmedError('bridge', `no Python environment at ${join(root, '.venv')} to run the GREEN judge`, { hint: 'run `npm run setup` (torch and transformers)' });
  const r = spawnSync(py, ['-m', 'llmed_green.judge'], {
    input: JSON.stringify({ model: folder, prompts, maxNewTokens: o.maxNewTokens, batchSize: o.batchSize, device: o.device }),
    encoding: 'utf8', maxBuffer: 256 << 20, env: { ...process.env, PYTHONPATH: PYTHON_ROOT, HF_HUB_OFFLINE: '1' },
  });
  if (r.status !== 0) throw new LlmedError('plugin', `the GREEN judge at ${folder} failed: ${r.stderr.trim().split('\n').pop()}`, { where: folder });
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { answers: string[] }).answers;
}

export const runtime: TextMetricRuntime<GreenOptions> = {
  text: true,
  aggregate: 'mean',
  computeText(input: TextMetricInput, o: GreenOptions, ctx?: TextMetricContext): TextMetricResult {
    const folder = judgeFolder(o, ctx);
    if (!existsSync(join(folder, 'config.json'))) {
      return { value: NaN, outputs: {}, perSample: input.samples.map(() => NaN), unit: 'fraction', higherIsBetter: true, skipped: `no judge model at ${folder}` };
    }
    if (!['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json'].some((f) => existsSync(join(folder, f)))) {
      throw new LlmedError('plugin', `the GREEN judge folder ${folder} has no tokenizer (tokenizer.json, tokenizer.model or tokenizer_config.json)`, { where: folder, hint: 'copy the judge model folder complete, tokenizer files included' });
    }
    // GREEN scores against the first reference; an empty reference has nothing to match and is skipped
    // by the AMOS-MM runner, so callers leave such samples out before scoring.
    const template = readPromptTemplate(folder);
    if (template === undefined) {
      return { value: NaN, outputs: {}, perSample: input.samples.map(() => NaN), unit: 'fraction', higherIsBetter: true, skipped: `no GREEN prompt at ${join(folder, PROMPT_FILE)} (GREEN's instruction, as green_score's make_prompt builds it, with {reference} and {candidate})` };
    }
    const prompts = input.samples.map((s) => greenPrompt(template, s.references[0] ?? '', s.candidate, o.maxWords));
    return greenFromAnswers(runJudge(folder, prompts, o, ctx));
  },
};

export const descriptor = definePlugin<GreenOptions>({
  id: 'green',
  kind: 'Metric',
  summary: 'GREEN: matched findings / (matched + clinically significant errors) from a local LLM judge; unreadable judge answers counted, not scored 0',
  reference: 'Ostmeier et al. 2024 (GREEN); green_score green.py / utils.py; spec §3.8',
  options: {
    type: 'object',
    properties: {
      judge: { type: 'string', default: '.cache/checkpoints/GREEN-RadLlama2-7b', description: 'local folder of the judge model (Hugging Face layout), relative to the workspace; never downloaded' },
      maxWords: { type: 'integer', minimum: 1, default: 300, description: 'each report is cut to its first maxWords words in the prompt (GREEN: 300)' },
      maxNewTokens: { type: 'integer', minimum: 1, default: 2048, description: "the judge's generation budget (GREEN: 2048)" },
      batchSize: { type: 'integer', minimum: 1, default: 4, description: 'prompts per generate call' },
      device: { type: 'string', default: 'cpu', description: "torch device of the judge ('cuda' runs it in fp16)" },
    },
  },
  runtime,
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
