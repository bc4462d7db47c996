/**
 * `llmed export <run|experiment>`: the run's field predictor as ONNX + manifest.json, through the Python
 * bridge (torch.onnx, LoRA merged, parity checked against onnxruntime before anything is renamed into
 * place). An experiment name means its newest trained run.
 */
import { existsSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { acquireWriteLock, checkSpecPlugins, LlmedError, readJsonFile, recoverFolder, type ModelSpec } from '@llmed/core';
import { checkOutputFolder } from '@llmed/runtime';
import { regionPrompt } from '@llmed/reports';
import { flagNumber, flagString, type ParsedArgs } from './args.ts';
import { loadContext } from './context.ts';
import { resolveRun } from './runs.ts';

export interface ExportResult { exportDir: string; manifest: Record<string, any> }

/** Exit status of a command stopped by a signal (the shell's 128 + signal number). */
export const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

export async function exportRun(runDir: string, opts: { tag?: 'best' | 'last'; outDir?: string; threads?: number } = {}): Promise<ExportResult> {
  const { ws, registry } = await loadContext();
  // A run stopped (time budget, Ctrl-C) before its first validation has no 'best' yet: export 'last' and say so.
  if (!opts.tag && !existsSync(join(runDir, 'checkpoints', 'best.json')) && existsSync(join(runDir, 'checkpoints', 'last.json'))) {
    console.error('no validated "best" checkpoint in this run (it stopped before its first validation): exporting "last"');
    opts = { ...opts, tag: 'last' };
  }
  // The run folder names its plugins by id; their code comes from this workspace's registry, never from
  // paths in spec.json (a run folder is data).
  const specFile = join(runDir, 'spec.json');
  const spec = readJsonFile(specFile) as ModelSpec & { task?: string };
  checkSpecPlugins(spec, registry, specFile);
  // A report run's prompt templates come from the code that wrote its training prompts (@llmed/reports).
  const prompts = spec.task === 'report' ? { report: regionPrompt('{region}'), vqa: '{question} Choices: {choices}' } : undefined;
  const plugins = registry.pythonEntries();
  const target = resolve(opts.outDir ?? join(runDir, 'export'));
  checkOutputFolder(target, 'export');
  const release = acquireWriteLock(target);
  const { PythonSession, pluginImportPaths } = await import('@llmed/bridge');
  let session: import('@llmed/bridge').PythonSession | undefined;
  // Ctrl-C / kill: stop Python at once (it would otherwise finish and install the export after the
  // command "was cancelled"), remove its staging folder, exit 130 / 143.
  let signalled: LlmedError | null = null;
  let cancel: (e: LlmedError) => void = () => undefined;
  const cancelled = new Promise<never>((_, reject) => { cancel = reject; });
  cancelled.catch(() => undefined);
  const onSignal = (signal: NodeJS.Signals) => {
    signalled ??= new LlmedError('cancelled', `export cancelled by ${signal}: Python was stopped and nothing was written`, { where: target, exitCode: SIGNAL_EXIT[signal] ?? 130 });
    cancel(signalled);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    session = await PythonSession.open({ workspaceRoot: ws.root });
    if (signalled) throw signalled;
    await Promise.race([session.addImportPaths(pluginImportPaths(plugins)), cancelled]);
    return await Promise.race([session.exportModel(runDir, { ...opts, workspaceRoot: ws.root, plugins, prompts }), session.exited, cancelled]);
  } catch (e) {
    if (session && isCancellation(e)) await stopExport(session, target);
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await session?.close();
    release();
  }
}

function isCancellation(e: unknown): boolean {
  return e instanceof LlmedError && e.kind === 'cancelled';
}

/** Kill the exporting Python child and undo what it had staged (llmed/export.py writes `<target>.tmp-<pid>`). */
async function stopExport(session: { proc: import('node:child_process').ChildProcess; pid: number }, target: string): Promise<void> {
  const { proc } = session;
  if (proc.exitCode === null && proc.signalCode === null) {
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGKILL');
    await gone;
  }
  // Its staging folder goes; killed between its two renames, the previous export lies aside and is put back.
  recoverFolder(target);
}

export function describeExport(r: ExportResult): string[] {
  const m = r.manifest;
  const p = m.parity;
  if (m.kind === 'report') {
    const mb = (f: string) => ((m.files?.[f]?.bytes ?? 0) / 2 ** 20).toFixed(1);
    const rp = p.report;
    return [
      `export: ${relative(process.cwd(), r.exportDir) || r.exportDir}`,
      `  vision.onnx ${mb('vision.onnx')} MB (input ${m.vision.input.shape.join('×')} → ${m.vision.output.shape[1]} image tokens × ${m.vision.output.shape[2]}), decoder.onnx ${mb('decoder.onnx')} MB (opset ${m.decoder.opset}, KV cache, LoRA merged), embeddings ${mb('embed_tokens.f32')} MB, tokenizer`,
      `  parity (onnxruntime vs torch, ${rp.images} test images, ${rp.steps} greedy steps): same tokens ${rp.sameTokens ? 'yes' : 'NO'}, max |logit difference| ${rp.maxLogitDifference.toExponential(2)} (limit ${rp.tolerance}), image tokens ${rp.maxImageTokenDifference.toExponential(2)}`,
    ];
  }
  return [
    `export: ${relative(process.cwd(), r.exportDir) || r.exportDir}`,
    `  model.onnx: ${(m.model.bytes / 2 ** 20).toFixed(1)} MB, opset ${m.model.opset}, ${m.model.parameters.toLocaleString('en-US')} parameters, ${m.model.loraLayersMerged} LoRA layers merged, input ${m.input.shape.join('×')}`,
    `  parity (onnxruntime vs torch, ${p.pair.moving} → ${p.pair.fixed}): max |field difference| ${p.maxAbsFieldDiffVoxels.toExponential(2)} voxels, Dice ${p.dice.torch ?? '—'} vs ${p.dice.onnxruntime ?? '—'}: ${p.passed ? 'passed' : 'FAILED'}`,
  ];
}

export async function exportCommand(args: ParsedArgs): Promise<number> {
  const target = args.positionals[0];
  if (!target) throw new LlmedError('usage', 'export needs a run folder or an experiment', { hint: 'llmed export runs/demo/<timestamp>   or   llmed export demo (its newest run)' });
  const tag = flagString(args, 'tag') as 'best' | 'last' | undefined;
  if (tag !== undefined && tag !== 'best' && tag !== 'last') throw new LlmedError('usage', `--tag must be best or last, not '${tag}'`);
  const { runDir } = await resolveRun(target);
  console.error(`exporting ${relative(process.cwd(), runDir) || runDir} (checkpoint ${tag ?? 'best'})`);
  const result = await exportRun(runDir, { tag, outDir: flagString(args, 'out'), threads: flagNumber(args, 'threads') });
  if (args.flags.json) console.log(JSON.stringify(result));
  else for (const line of describeExport(result)) console.log(line);
  return 0;
}
