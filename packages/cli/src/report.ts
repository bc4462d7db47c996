/**
 * `llmed report --model <export> --image ct.nii.gz [--region abdomen] [--prompt text]` and
 * `llmed ask --model <export> --image ct.nii.gz --question "..." --choices "A=...,B=...,C=...,D=..."`:
 * report generation and multiple-choice answering from a report export, natively in Node (onnxruntime-node,
 * the checkpoint's tokenizer.json) — no Python. The scan is preprocessed by the export's own pipeline
 * (the one training used, @llmed/reports), the report streams to the terminal as it is generated, and
 * report.json / answer.json are written (temporary name, then rename).
 */
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { LlmedError, writeFileAtomic } from '@llmed/core';
import { readNifti } from '@llmed/imaging';
import { ctPipelineOf, preprocessCT } from '@llmed/reports';
import { ReportGenerator } from '@llmed/runtime';
import { flagNumber, flagString, type ParsedArgs } from './args.ts';
import { resolveRun } from './runs.ts';

async function openModel(args: ParsedArgs, command: string): Promise<{ generator: ReportGenerator; model: string }> {
  const target = args.positionals[0];
  const model = flagString(args, 'model') ?? (target ? join((await resolveRun(target)).runDir, 'export') : undefined);
  if (!model) throw new LlmedError('usage', `${command} needs --model <export folder> (or an experiment / run name)`, { hint: `llmed ${command} --model runs/report-proxy/<stamp>/export --image ct.nii.gz` });
  if (!existsSync(model)) throw new LlmedError('usage', `no export at ${model}`, { where: '--model', hint: 'export a trained report model with `llmed export <run>`' });
  return { generator: await ReportGenerator.load(resolve(model), { threads: flagNumber(args, 'threads') }), model: resolve(model) };
}

/** The scan as the vision graph takes it: read, preprocessed by the export's pipeline, shape checked. */
async function preparedImage(generator: ReportGenerator, file: string): Promise<{ tensor: Float32Array; steps: string[] }> {
  if (!existsSync(file)) throw new LlmedError('usage', `no such file: ${file}`, { where: '--image' });
  const vol = await readNifti(file);
  const pre = generator.manifest.preprocess as { pipeline?: string; shape?: number[] };
  if (!pre.pipeline || !pre.shape) throw new LlmedError('checkpoint', 'the export names no preprocessing pipeline (manifest.preprocess.pipeline and .shape)', { where: join(generator.folder, 'manifest.json'), hint: 'export the model again' });
  const p = preprocessCT(vol, ctPipelineOf({ pipeline: pre.pipeline, shape: pre.shape }, `${generator.folder}/manifest.json preprocess`), file);
  const want = generator.imageShape.reduce((a, b) => a * b, 1);
  if (p.tensor.length !== want) throw new LlmedError('checkpoint', `preprocessing gives ${p.tensorShape.join('×')}, the vision model takes ${generator.imageShape.join('×')}`, { where: join(generator.folder, 'manifest.json') });
  return { tensor: p.tensor, steps: p.steps };
}

function generationFlags(args: ParsedArgs) {
  const strategy = flagString(args, 'strategy');
  if (strategy !== undefined && strategy !== 'greedy' && strategy !== 'sample') throw new LlmedError('usage', `--strategy is greedy or sample, not '${strategy}'`);
  return {
    strategy: strategy as 'greedy' | 'sample' | undefined,
    temperature: flagNumber(args, 'temperature'),
    topP: flagNumber(args, 'top-p'),
    seed: flagNumber(args, 'seed'),
    repetitionPenalty: flagNumber(args, 'repetition-penalty'),
    maxNewTokens: flagNumber(args, 'max-new-tokens'),
  };
}

export async function reportCommand(args: ParsedArgs): Promise<number> {
  const image = flagString(args, 'image');
  if (!image) throw new LlmedError('usage', 'report needs --image <ct.nii.gz>', { hint: 'llmed report --model <export> --image ct.nii.gz [--region abdomen]' });
  const { generator, model } = await openModel(args, 'report');
  try {
    const { tensor, steps } = await preparedImage(generator, resolve(image));
    const region = flagString(args, 'region') ?? 'abdomen';
    const prompt = flagString(args, 'prompt');
    const gen = generationFlags(args);
    const json = args.flags.json === true;
    if (!json) process.stderr.write(`${basename(image)} · ${prompt === undefined ? `region ${region}` : 'custom prompt'} · ${generator.manifest.source?.experiment ?? basename(model)}\n`);
    const r = await generator.report(tensor, { region, prompt, ...gen, onText: json ? undefined : (d) => process.stdout.write(d) });
    if (!json) process.stdout.write('\n');
    const out = resolve(flagString(args, 'out') ?? 'report.json');
    const record = {
      image: resolve(image), model, region: prompt === undefined ? region : undefined, prompt: prompt ?? generator.manifest.prompt.templates.report,
      report: r.text, tokens: r.ids.length, finish: r.finish, preprocessing: steps,
      generation: { ...generator.manifest.generation, ...Object.fromEntries(Object.entries(gen).filter(([, v]) => v !== undefined)) },
      timing: { prefillMs: r.prefillMs, msPerToken: r.stepMs },
      note: 'generated by a model; not a radiologist\'s report',
    };
    await writeFileAtomic(out, `${JSON.stringify(record, null, 2)}\n`);
    if (json) console.log(JSON.stringify(record));
    else process.stderr.write(`${r.ids.length} tokens (${r.finish}), first token after ${r.prefillMs.toFixed(0)} ms, then ${r.stepMs.toFixed(1)} ms/token; wrote ${out}\n`);
    return 0;
  } finally {
    await generator.release();
  }
}

/** `--choices "A=liver,B=spleen,C=kidney,D=pancreas"` → {A: 'liver', ...}. */
export function parseChoices(value: string | undefined): Record<string, string> {
  if (!value) throw new LlmedError('usage', 'ask needs --choices "A=...,B=...,C=...,D=..."');
  const choices: Record<string, string> = {};
  for (const part of value.split(',')) {
    const m = /^\s*([A-Za-z])\s*=\s*(.+?)\s*$/.exec(part);
    if (!m) throw new LlmedError('usage', `'${part}' is not LETTER=text`, { where: '--choices', hint: 'e.g. --choices "A=liver,B=spleen,C=left kidney,D=pancreas"' });
    const letter = m[1].toUpperCase();
    if (choices[letter] !== undefined) throw new LlmedError('usage', `choice ${letter} is given twice`, { where: '--choices' });
    choices[letter] = m[2];
  }
  if (Object.keys(choices).length < 2) throw new LlmedError('usage', 'give at least two choices', { where: '--choices' });
  return choices;
}

export async function askCommand(args: ParsedArgs): Promise<number> {
  const image = flagString(args, 'image');
  const question = flagString(args, 'question');
  const missing = [!image && '--image', !question && '--question'].filter(Boolean);
  if (missing.length) throw new LlmedError('usage', `ask needs ${missing.join(', ')}`, { hint: 'llmed ask --model <export> --image ct.nii.gz --question "Which organ holds the lesion?" --choices "A=liver,B=spleen,C=kidney,D=pancreas"' });
  const choices = parseChoices(flagString(args, 'choices'));
  const { generator, model } = await openModel(args, 'ask');
  try {
    const { tensor } = await preparedImage(generator, resolve(image!));
    const r = await generator.ask(tensor, question!, choices);
    const out = resolve(flagString(args, 'out') ?? 'answer.json');
    const record = { image: resolve(image!), model, question, choices, answer: r.answer, scores: r.scores, how: 'the logit of each option letter as the next token after the question' };
    await writeFileAtomic(out, `${JSON.stringify(record, null, 2)}\n`);
    if (args.flags.json) console.log(JSON.stringify(record));
    else {
      console.log(`${r.answer}. ${choices[r.answer]}`);
      for (const [k, v] of Object.entries(r.scores)) console.error(`  ${k} ${v.toFixed(3)}${k === r.answer ? '  ←' : ''}`);
      console.error(`wrote ${out}`);
    }
    return 0;
  } finally {
    await generator.release();
  }
}
