/** `llmed config check <experiment|config>`: schema, plugin options, composition and shape checks. */
import { existsSync } from 'node:fs';
import { relative, sep } from 'node:path';
import { describeSpec, LlmedError } from '@llmed/core';
import type { ParsedArgs } from './args.ts';
import { loadExperiment } from './context.ts';
import { dataRoot } from './prepare.ts';

export async function configCheck(args: ParsedArgs): Promise<number> {
  const target = args.positionals[0];
  if (!target) throw new LlmedError('usage', 'config check needs an experiment name or a config file', { hint: 'llmed config check abdomen-mrct' });
  const ex = await loadExperiment(target);
  if (args.flags.json) {
    // --portable: paths inside the workspace as `<workspace>/…`, so the spec can be shared (docs/example-model-spec.json
    // is `llmed config check demo --json --portable`) without naming the machine it was composed on
    const spec = args.flags.portable ? portablePaths(ex.spec, ex.ws.root) : ex.spec;
    process.stdout.write(`${JSON.stringify(spec, null, 2)}\n`);
    return 0;
  }
  const rel = relative(process.cwd(), ex.configFile) || ex.configFile;
  console.log(`✓ ${rel}: ${ex.config.method} experiment '${ex.name}' — schema, plugin options and shapes check out`);
  for (const line of describeSpec(ex.spec)) console.log(`  ${line}`);
  const notes: string[] = [];
  for (const node of ex.spec.block) {
    if (node.kind === 'LLMBackbone' && node.options.checkpoint && !node.sharesWith) {
      const found = node.options.checkpointFound;
      notes.push(`${node.path} ${node.id}: checkpoint ${node.options.checkpoint} ${found ? 'found (hidden size and layer range verified against its config.json)' : 'not found — needed for training, not for this check'}`);
    }
  }
  const root = dataRoot(ex.ws.root, ex.config);
  notes.push(`data: ${ex.config.data.title} at ${relative(process.cwd(), root) || root} ${existsSync(root) ? 'found' : 'not found — needed for prepare/train'}`);
  for (const n of notes) console.log(`  · ${n}`);
  return 0;
}

/** A copy of `value` whose strings naming paths under `root` read `<workspace>/relative/path`. */
export function portablePaths<T>(value: T, root: string): T {
  const prefix = root.endsWith(sep) ? root : root + sep;
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'string' && (v === root || v.startsWith(prefix)) ? `<workspace>/${relative(root, v).split(sep).join('/')}`.replace(/\/$/, '') : v))) as T;
}
