/**
 * `llmed export <run|experiment>`: the run's field predictor as ONNX + manifest.json, through the Python
 * bridge (torch.onnx, LoRA merged, parity checked against onnxruntime before anything is renamed into
 * place). An experiment name means its newest trained run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { LlmedError, type ModelSpec } from '@llmed/core';
import { flagNumber, flagString, type ParsedArgs } from './args.ts';
import { loadContext } from './context.ts';
import { resolveRun } from './runs.ts';

export interface ExportResult { exportDir: string; manifest: Record<string, any> }

export async function exportRun(runDir: string, opts: { tag?: 'best' | 'last'; outDir?: string; threads?: number } = {}): Promise<ExportResult> {
  const { ws } = await loadContext();
  // A run stopped (time budget, Ctrl-C) before its first validation has no 'best' yet: export 'last' and say so.
  if (!opts.tag && !existsSync(join(runDir, 'checkpoints', 'best.json')) && existsSync(join(runDir, 'checkpoints', 'last.json'))) {
    console.error('no validated "best" checkpoint in this run (it stopped before its first validation): exporting "last"');
    opts = { ...opts, tag: 'last' };
  }
  const { PythonSession, specImportPaths } = await import('@llmed/bridge');
  const spec = JSON.parse(readFileSync(join(runDir, 'spec.json'), 'utf8')) as ModelSpec;
  const session = await PythonSession.open({ workspaceRoot: ws.root });
  try {
    await session.addImportPaths(specImportPaths(spec));
    return await Promise.race([session.exportModel(runDir, { ...opts, workspaceRoot: ws.root }), session.exited]);
  } finally {
    await session.close();
  }
}

export function describeExport(r: ExportResult): string[] {
  const m = r.manifest;
  const p = m.parity;
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
