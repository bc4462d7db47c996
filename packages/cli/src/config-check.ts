/** `llmed config check <experiment|config>`: schema, plugin options, composition and shape checks. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { describeReportSpec, describeSpec, LlmedError } from '@llmed/core';
import type { ParsedArgs } from './args.ts';
import { loadAnyExperiment, type Experiment, type Loaded, type ReportExperiment } from './context.ts';
import { dataRoot } from '@llmed/data';

export async function configCheck(args: ParsedArgs): Promise<number> {
  const target = args.positionals[0];
  if (!target) throw new LlmedError('usage', 'config check needs an experiment name or a config file', { hint: 'llmed config check abdomen-mrct' });
  const any = await loadAnyExperiment(target);
  if (any.task === 'report') return reportCheck(any, Boolean(args.flags.json));

  const ex = any;
  const pythonNote = await checkLlmPythonSide(ex);
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
  if (pythonNote) notes.push(pythonNote);
  for (const n of notes) console.log(`  · ${n}`);
  return 0;
}

/** The report-generation form of the check: the composed chain and what is still missing on disk. */
async function reportCheck(ex: Loaded & ReportExperiment, json: boolean): Promise<number> {
  if (json) {
    process.stdout.write(`${JSON.stringify(ex.spec, null, 2)}\n`);
    return 0;
  }
  const rel = relative(process.cwd(), ex.configFile) || ex.configFile;
  console.log(`✓ ${rel}: ${ex.config.method} report-generation experiment '${ex.name}' — schema, plugin options and shapes check out`);
  for (const line of describeReportSpec(ex.spec)) console.log(`  ${line}`);
  const notes: string[] = [];
  const llm = ex.spec.llm;
  notes.push(`${llm.path} ${llm.id}: checkpoint ${String(llm.options.checkpoint)} ${llm.options.checkpointFound ? 'found (model type and hidden size verified against its config.json)' : 'not found — needed for training, not for this check'}`);
  for (const node of [ex.spec.encoder, ex.spec.projector, llm, ...ex.spec.losses]) {
    const d = ex.registry.get(node.id);
    const missing = node === llm ? d.causalLM?.missing(node.options as never, { workspaceRoot: ex.ws.root }) : d.missing?.(node.options, { workspaceRoot: ex.ws.root });
    if (missing && !(node === llm && !llm.options.checkpointFound)) notes.push(`${node.path} (${node.id}): ${missing}`);
  }
  const root = dataRoot(ex.ws.root, ex.config as never);
  notes.push(`data: ${ex.config.data.title} at ${relative(process.cwd(), root) || root} ${existsSync(root) ? 'found' : 'not found — needed for prepare/train'}`);
  const llmReady = llm.options.checkpointFound && !ex.registry.get(llm.id).causalLM?.missing(llm.options as never, { workspaceRoot: ex.ws.root });
  if (llmReady) notes.push(await checkPython(ex, 'check_report_llm', ex.spec, (r) => `Python side of model.llm builds: transformers config, tokenizer with ${String(llm.options.imageToken)} as token ${String(r.imageTokenId)}, end-of-text ${String(r.endOfText)} (${String(r.endOfTextId)})`));
  for (const n of notes) console.log(`  · ${n}`);
  return 0;
}

/** Run one `llmed.api` check on the spec in the workspace's Python; a failure fails the check naming the config. */
async function checkPython(ex: Loaded & { configFile: string }, fn: string, spec: unknown, say: (r: Record<string, unknown>) => string): Promise<string> {
  const { BRIDGE_PYTHON_ROOT, resolvePythonBin } = await import('@llmed/bridge');
  const python = [ex.ws.root, join(BRIDGE_PYTHON_ROOT, '..', '..')].map((root) => { try { return resolvePythonBin(root); } catch { return null; } }).find(Boolean);
  if (!python) return `the Python side (${fn}) was not checked: no Python environment (npm run setup)`;
  const dir = mkdtempSync(join(tmpdir(), 'llmed-check-'));
  try {
    const specFile = join(dir, 'spec.json');
    writeFileSync(specFile, JSON.stringify(spec));
    const code = `import json, sys\nfrom llmed.api import ${fn}\nprint(json.dumps(${fn}(sys.argv[1], sys.argv[2])))`;
    const r = spawnSync(python, ['-c', code, specFile, ex.ws.root], {
      encoding: 'utf8', timeout: 300_000, env: { ...process.env, PYTHONPATH: [BRIDGE_PYTHON_ROOT, process.env.PYTHONPATH].filter(Boolean).join(':') },
    });
    let result: Record<string, unknown> & { ok?: boolean; message?: string };
    try {
      result = JSON.parse((r.stdout ?? '').trim().split('\n').pop() ?? '');
    } catch {
      throw new LlmedError('bridge', `could not run the Python check ${fn}: ${(r.stderr || r.error?.message || 'no answer').trim().split('\n').pop()}`, { where: relative(process.cwd(), ex.configFile) || ex.configFile });
    }
    if (!result.ok) throw new LlmedError('plugin', result.message ?? `${fn} failed`, { where: relative(process.cwd(), ex.configFile) || ex.configFile });
    return say(result);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A copy of `value` whose strings naming paths under `root` read `<workspace>/relative/path`. */
export function portablePaths<T>(value: T, root: string): T {
  const prefix = root.endsWith(sep) ? root : root + sep;
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'string' && (v === root || v.startsWith(prefix)) ? `<workspace>/${relative(root, v).split(sep).join('/')}`.replace(/\/$/, '') : v))) as T;
}

/**
 * The Python side of the LLM backbones whose checkpoint is on disk: the plugin module imports, its family
 * names transformers classes that import, the checkpoint's config loads as that family (`llmed.api.check_llm_nodes`,
 * no weights read). A failure fails the check, naming the config; without a Python environment the check
 * says it was not done. Returns the note to print, or null when there was nothing to check.
 */
async function checkLlmPythonSide(ex: Loaded & Experiment): Promise<string | null> {
  const nodes = ex.spec.block.filter((n) => n.kind === 'LLMBackbone' && !n.sharesWith && n.options.checkpointFound);
  if (!nodes.length) return null;
  const { BRIDGE_PYTHON_ROOT, resolvePythonBin } = await import('@llmed/bridge');
  // the workspace's venv, else the one of the llmed checkout (a workspace of one's own has none)
  const python = [ex.ws.root, join(BRIDGE_PYTHON_ROOT, '..', '..')].map((root) => { try { return resolvePythonBin(root); } catch { return null; } }).find(Boolean);
  if (!python) return 'the Python side of the LLM backbones was not checked: no Python environment (npm run setup)';
  const dir = mkdtempSync(join(tmpdir(), 'llmed-check-'));
  try {
    const specFile = join(dir, 'spec.json');
    writeFileSync(specFile, JSON.stringify(ex.spec));
    const code = 'import json, sys\nfrom llmed.api import check_llm_nodes\nprint(json.dumps(check_llm_nodes(sys.argv[1], sys.argv[2])))';
    const r = spawnSync(python, ['-c', code, specFile, ex.ws.root], {
      encoding: 'utf8', timeout: 300_000, env: { ...process.env, PYTHONPATH: [BRIDGE_PYTHON_ROOT, process.env.PYTHONPATH].filter(Boolean).join(':') },
    });
    const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
    let result: { ok: boolean; message?: string; checked?: string[] };
    try {
      result = JSON.parse(last);
    } catch {
      throw new LlmedError('bridge', `could not check the Python side of the LLM backbones: ${(r.stderr || r.error?.message || 'no answer').trim().split('\n').pop()}`, { where: relative(process.cwd(), ex.configFile) || ex.configFile });
    }
    if (!result.ok) {
      throw new LlmedError('plugin', result.message ?? 'the Python side of an LLM backbone cannot be built', {
        where: relative(process.cwd(), ex.configFile) || ex.configFile,
        hint: "an LLM family plugin's family.json names its transformers module and classes; its Python package sets FAMILY = Family.from_json(...) (docs/writing-a-plugin.md)",
      });
    }
    return `Python side of ${result.checked?.join(', ')} builds (plugin module, transformers family classes, checkpoint config)`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
