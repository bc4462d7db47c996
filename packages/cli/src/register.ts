/**
 * `llmed register --moving m.nii.gz --fixed f.nii.gz --model <export> [--moving-labels l] [--fixed-labels l]`:
 * native registration of one pair with onnxruntime-node and TypeScript warps — no Python.
 */
import { basename, join, relative, resolve } from 'node:path';
import { LlmedError } from '@llmed/core';
import { registerPair } from '@llmed/runtime';
import { flagNumber, flagString, type ParsedArgs } from './args.ts';
import { loadContext } from './context.ts';
import { DEFAULT_METRICS, parseMetricList, resolveMetrics } from './metrics.ts';
import { resolveRun } from './runs.ts';

const stem = (p: string) => basename(p).replace(/\.nii(\.gz)?$/i, '');

export async function registerCommand(args: ParsedArgs): Promise<number> {
  const moving = flagString(args, 'moving');
  const fixed = flagString(args, 'fixed');
  // `llmed register <experiment|run> ...` (what `nx run demo:register` passes) means that run's export.
  const target = args.positionals[0];
  const model = flagString(args, 'model') ?? (target ? join((await resolveRun(target)).runDir, 'export') : undefined);
  const missing = [!moving && '--moving', !fixed && '--fixed', !model && '--model'].filter(Boolean);
  if (missing.length) {
    throw new LlmedError('usage', `register needs ${missing.join(', ')}`, { hint: 'llmed register [<experiment|run>] --moving m.nii.gz --fixed f.nii.gz --model runs/demo/<stamp>/export [--moving-labels ml.nii.gz --fixed-labels fl.nii.gz] [--out DIR]' });
  }
  const { registry } = await loadContext();
  const asked = parseMetricList(flagString(args, 'metrics'));
  const metrics = resolveMetrics(registry, asked ?? DEFAULT_METRICS, '--metrics');
  const out = resolve(flagString(args, 'out') ?? `registered_${stem(moving!)}_to_${stem(fixed!)}`);
  const r = await registerPair({
    moving: moving!, fixed: fixed!, model: model!, out, metrics, explicitMetrics: asked !== undefined,
    movingLabels: flagString(args, 'moving-labels'), fixedLabels: flagString(args, 'fixed-labels'), field: flagString(args, 'field'),
    threads: flagNumber(args, 'threads'), log: (line) => console.error(line),
  });
  if (args.flags.json) {
    console.log(JSON.stringify({ out: r.out, metricsFile: r.metricsFile, report: r.report }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));
    return 0;
  }
  const rep = r.report;
  for (const note of rep.notes) console.log(`note: ${note}`);
  console.log(`registered ${basename(rep.inputs.moving)} → ${basename(rep.inputs.fixed)} with ${rep.model.experiment} (${rep.model.sourceRun}, step ${rep.model.step}) in ${rep.timePerPairSeconds.toFixed(3)} s (model + warp)`);
  const show = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? v.toFixed(4) : 'n/a');
  for (const [id, m] of Object.entries(rep.metrics)) {
    const before = rep.initial[id] ? ` (before registration ${show(rep.initial[id].value)})` : '';
    console.log(`  ${id.padEnd(22)} ${show(m.value)} ${m.unit}${before}`);
  }
  for (const [id, why] of Object.entries(rep.skipped)) console.log(`  ${id.padEnd(22)} skipped: ${why}`);
  console.log(`outputs: ${relative(process.cwd(), r.out) || r.out} (warped, labels, field DISPVECT mm, jacobian, metrics.json); view them with: llmed view ${relative(process.cwd(), r.out) || r.out}`);
  return 0;
}
