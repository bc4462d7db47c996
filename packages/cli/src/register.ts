/**
 * `llmed register --moving m.nii.gz --fixed f.nii.gz --model <export> [--moving-labels l] [--fixed-labels l]`:
 * native registration of one pair with onnxruntime-node and TypeScript warps — no Python.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { LlmedError } from '@llmed/core';
import { registerPair, type LabelChoice } from '@llmed/runtime';
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
    labels: parseLabelChoice(flagString(args, 'labels')), boxToBox: args.flags['box-to-box'] === true, affine: args.flags.affine === true,
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
    const afterAffine = rep.affine?.metrics[id] ? `, after the affine step ${show(rep.affine.metrics[id].value)}` : '';
    const before = rep.initial[id] ? ` (before registration ${show(rep.initial[id].value)}${afterAffine})` : '';
    console.log(`  ${id.padEnd(22)} ${show(m.value)} ${m.unit}${before}`);
  }
  for (const [id, why] of Object.entries(rep.skipped)) console.log(`  ${id.padEnd(22)} skipped: ${why}`);
  for (const [id, why] of Object.entries(rep.missing)) console.log(`  ${id.padEnd(22)} n/a: ${why}`);
  console.log(`outputs: ${relative(process.cwd(), r.out) || r.out} (warped, labels, field DISPVECT mm, jacobian, metrics.json); view them with: llmed view ${relative(process.cwd(), r.out) || r.out}`);
  return 0;
}

/**
 * `--labels`: a comma list of label ids (`2,3,4`), or a lookup table file — FreeSurfer's colour table
 * layout (`id name r g b a` per line, `#` comments; ITK-SNAP's and 3D Slicer's are the same shape), a CSV
 * with the id first and the name second, or JSON `{"id": "name"}`. Label 0 (background) is never scored.
 */
export function parseLabelChoice(value: string | undefined): LabelChoice | undefined {
  if (value === undefined) return undefined;
  const where = '--labels';
  if (/^\s*-?\d+(\s*,\s*-?\d+)*\s*$/.test(value)) {
    const ids = [...new Set(value.split(',').map((x) => Number(x.trim())))].filter((l) => l !== 0);
    if (!ids.length) throw new LlmedError('usage', 'no label ids left after dropping 0 (background)', { where });
    return { ids, source: '--labels' };
  }
  const file = resolve(value);
  if (!existsSync(file)) throw new LlmedError('usage', `'${value}' is neither a list of label ids (2,3,4) nor an existing lookup table file`, { where, hint: 'e.g. --labels 2,3,4 or --labels FreeSurferColorLUT.txt' });
  const text = readFileSync(file, 'utf8');
  const names: Record<string, string> = {};
  if (/\.json$/i.test(file)) {
    let table: unknown;
    try { table = JSON.parse(text); } catch (e) { throw new LlmedError('data', `lookup table is not valid JSON: ${(e as Error).message}`, { where: file }); }
    if (!table || typeof table !== 'object' || Array.isArray(table)) throw new LlmedError('data', 'a JSON lookup table is an object {"id": "name", ...}', { where: file });
    for (const [k, v] of Object.entries(table as Record<string, unknown>)) {
      if (!/^-?\d+$/.test(k)) throw new LlmedError('data', `key '${k}' is not an integer label id`, { where: file });
      names[String(Number(k))] = String(v);
    }
  } else {
    text.split(/\r?\n/).forEach((line, n) => {
      const t = line.replace(/#.*/, '').trim();
      if (!t) return;
      const cells = t.split(/[\s,;]+/);
      if (!/^-?\d+$/.test(cells[0])) {
        if (n === 0 || Object.keys(names).length === 0) return; // a header row
        throw new LlmedError('data', `line ${n + 1}: '${cells[0]}' is not an integer label id`, { where: file, hint: 'one label per line: id name [r g b a]' });
      }
      names[String(Number(cells[0]))] = cells[1] ?? cells[0];
    });
  }
  const ids = Object.keys(names).map(Number).filter((l) => l !== 0).sort((a, b) => a - b);
  if (!ids.length) throw new LlmedError('data', 'the lookup table lists no label ids other than 0', { where: file });
  return { ids, names: Object.fromEntries(ids.map((l) => [String(l), names[String(l)]])), source: `lookup table ${basename(file)}` };
}
