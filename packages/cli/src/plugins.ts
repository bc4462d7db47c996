/** `llmed plugins list [--json] [--kind K]`: the registry, straight from the inversify container. */
import { PLUGIN_KINDS, pluginOptions, type PluginDescriptor, type PluginKind, LlmedError } from '@llmed/core';
import type { ParsedArgs } from './args.ts';
import { flagString } from './args.ts';
import { loadContext } from './context.ts';

/** A descriptor as JSON, with its example options default-filled and the example's output shape. */
export function describePlugin(d: PluginDescriptor<any>, source: string | undefined, workspaceRoot: string) {
  const options = pluginOptions(d, d.example.options, `${d.id}.example.options`);
  let output: unknown;
  try {
    output = d.shape?.(d.example.inputs, options, { workspaceRoot });
  } catch (e) {
    output = { error: (e as Error).message };
  }
  return { id: d.id, kind: d.kind, summary: d.summary, source, reference: d.reference, python: d.python, optionsSchema: d.options, options, inputs: d.example.inputs, output };
}

export async function pluginsList(args: ParsedArgs): Promise<number> {
  const { ws, registry } = await loadContext();
  const kind = flagString(args, 'kind') as PluginKind | undefined;
  if (kind && !PLUGIN_KINDS.includes(kind)) throw new LlmedError('usage', `unknown kind '${kind}'; kinds: ${PLUGIN_KINDS.join(', ')}`);
  const list = registry.list(kind);
  if (args.flags.json) {
    process.stdout.write(`${JSON.stringify(list.map((d) => describePlugin(d, registry.sourceOf(d.id), ws.root)), null, 2)}\n`);
    return 0;
  }
  // a Metric's python entry is its numpy reference, which nothing trains
  const rows = list.map((d) => [d.kind, d.id, d.python && d.kind !== 'Metric' ? 'torch' : '-', registry.sourceOf(d.id) ?? '', d.summary]);
  const head = ['kind', 'id', 'trains', 'package', 'summary'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log(`\n${list.length} plugins from ${ws.file}`);
  return 0;
}
