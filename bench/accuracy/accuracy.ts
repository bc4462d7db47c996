/**
 * The accuracy benchmark (`npm run bench:accuracy`): the papers' comparisons and ablations, trained by
 * the same engine under one fixed wall-clock budget per model, on proxies built from real anatomy, then
 * evaluated natively (ONNX export → onnxruntime-node → TypeScript metrics) exactly like `llmed evaluate`.
 *
 *   npx tsx bench/accuracy/accuracy.ts [--budget-minutes 2.25 | --steps N] [--seeds 0,1,2] [--only id,id] [--device cpu|cuda] [--no-syn] [--merge] [--report-only]
 *
 * `--seeds` trains every learned arm once per seed (the experiment's train.seed: initialisation and pair
 * order); rows pool the test pairs of all seeds, and paired claims compare the two arms' models of the same
 * seed on the same pair (n = pairs × seeds).
 *
 * `--steps N` trains every arm for exactly N steps instead of a wall-clock budget: the same models on a loaded
 * machine, only later (the cascade's three phases then split N by the same proportions as under a budget).
 *
 * `--merge` keeps the rows of bench/results/accuracy.json that this run does not re-run (another table, other arms),
 * each still marked with the run it came from, so a long benchmark can be run a table at a time; the markdown lists
 * every run whose rows it shows and with what budget. A saved row is kept only when it was measured on the data this
 * run measures on (each row records its proxy's generator parameters, digested: a proxy aligned by SimpleITK and
 * one aligned by the moments fallback are different data); the others are dropped, and the run says so.
 *
 * Tables (arm ids):
 * - synthetic warps (4 real brains under known smooth deformations; 4 held-out test pairs with aseg labels and
 *   their true fields, so endpoint error is measured): llama-reg-c1, llama-reg-cascade3, voxelmorph, llm-free,
 *   vit, syn-warps — and the ablations of LLaMA-Reg-C1 on the same data: random-llm, no-posemb,
 *   one-llm-block, layer-first, layer-middle;
 * - OASIS proxy (inter-subject, 2 labelled test pairs): oasis-c1, syn;
 * - Abdomen MR-CT proxy (1 real MR–CT test pair): llm-morph, llm-morph-llm-free, llm-morph-no-lora, syn-abdomen;
 * - with --device cuda also gpu-knee: the knee-size model (160×160×96) with AMP, it/s and peak GPU memory.
 * "Initial" is each proxy's unregistered row. Writes bench/results/accuracy.{json,md} with the papers' Table 1
 * numbers beside ours for reference (different data: orderings only), and the report of which claims
 * replicate here (paired t-test over the test pairs). Written as the run goes, so a cut-short run still leaves a table.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRegistry, loadWorkspace, writeFileAtomic } from '@llmed/core';
import { preparedDir } from '@llmed/data';
import { type MetricRuntime } from '@llmed/imaging';
import { evaluateExport, jsonNumbers, meanStd, summaryCell, type EvaluationTable, type FieldSource, type MetricPlugin } from '@llmed/runtime';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'packages', 'cli', 'bin', 'llmed.mjs');
const PYTHON = join(ROOT, '.venv', 'bin', 'python');
const WORK = join(ROOT, '.cache', 'bench', 'accuracy');
/** Where bench/proxies/proxies.py writes each proxy (its default `--out`). */
const PROXY_DATA = join(ROOT, '.cache', 'data');
const RESULTS = join(ROOT, 'bench', 'results');

type Config = Record<string, any>;
type TableId = 'warps' | 'ablation' | 'oasis' | 'abdomen' | 'gpu';
interface Arm { id: string; label: string; table: TableId; base: string; patch?: (c: Config, ctx: { c1Steps?: number }) => void; cudaOnly?: boolean }

/** Each proxy table: its experiment config, the proxy it is generated from, the metric claims are judged on. */
const TABLES: Record<'warps' | 'oasis' | 'abdomen', { config: string; proxy: string; title: string; primary: 'endpoint-error' | 'dice'; syn: string }> = {
  warps: {
    config: 'synthetic-warps', proxy: 'synthetic-warps', primary: 'endpoint-error', syn: 'syn-warps',
    title: 'Synthetic warps (4 real brains of the OASIS proxy under known smooth deformations, max 8 mm; 14 training pairs, 2 validation pairs (one more deformation of the 2 aseg brains, not trained on), 4 held-out test deformations of them; 48×64×48; not a paper dataset)',
  },
  oasis: {
    config: 'oasis-proxy', proxy: 'oasis-proxy', primary: 'dice', syn: 'syn',
    title: 'OASIS proxy (4 real brains, inter-subject, aseg, 30 labels, 2 labelled test pairs; 48×64×48; not the Learn2Reg OASIS dataset)',
  },
  abdomen: {
    config: 'abdomen-proxy', proxy: 'abdomen-mrct-proxy', primary: 'dice', syn: 'syn-abdomen',
    title: 'Abdomen MR-CT proxy (one MR, one CT of different subjects, 16 shared organs; not the Learn2Reg dataset)',
  },
};

// The registered LLM family plugins (LLMBackbone plugins backed by a checkpoint folder), filled from the
// registry before any arm is patched: the benchmark keeps no list of families of its own.
let LLM_FAMILIES: string[] = [];
const llmNodes = (c: Config) => (c.model.block as Config[]).filter((b) => LLM_FAMILIES.includes(b.use) && !b.share);

/** Another experiment's model and loss on this arm's data and grid (the token grid follows the input size). */
function modelFrom(name: string): (c: Config) => void {
  return (c) => {
    const other = JSON.parse(readFileSync(join(ROOT, 'configs', name, 'config.json'), 'utf8')) as Config;
    const input = c.model.input;
    const grid = c.model.tokens.with.grid;
    c.model = { ...structuredClone(other.model), input };
    c.model.tokens.with.grid = grid;
    c.loss = structuredClone(other.loss);
  };
}

/** The OASIS proxy on the synthetic-warps grid (48×64×48, 3×4×3 tokens): a 64³ step costs 1.8× more. */
function onWarpsGrid(c: Config): void {
  c.data.preprocess.shape = [48, 64, 48];
  c.model.input.shape = [48, 64, 48];
  c.model.tokens.with.grid = [3, 4, 3];
}

const ARMS: Arm[] = [
  { id: 'llama-reg-c1', label: 'LLaMA-Reg-C1', table: 'warps', base: 'synthetic-warps' },
  {
    id: 'llama-reg-cascade3', label: 'LLaMA-Reg (3-step cascade, step by step)', table: 'warps', base: 'synthetic-warps',
    // Three decoders trained one after another within the same total budget; the phase lengths follow
    // the steps C1 reached in its budget (later phases run more decoders per step, so they are shorter).
    patch: (c, ctx) => {
      const s = Math.max(30, ctx.c1Steps ?? 300);
      const phases = [Math.round(s * 0.5), Math.round(s * 0.25), Math.round(s * 0.2)];
      c.model.decoder = { use: 'cascade', with: { ...c.model.decoder.with, steps: 3 } };
      c.train.cascade = { schedule: 'step-by-step', iterations: phases };
      c.train.iterations = phases.reduce((a, b) => a + b, 0);
    },
  },
  { id: 'voxelmorph', label: 'VoxelMorph-style U-Net', table: 'warps', base: 'synthetic-warps', patch: modelFrom('oasis-proxy-voxelmorph') },
  { id: 'llm-free', label: 'w/o LLM (LLM-free)', table: 'warps', base: 'synthetic-warps', patch: (c) => { c.model.block = c.model.block.filter((b: Config) => !LLM_FAMILIES.includes(b.use)); } },
  {
    id: 'vit', label: 'ViT stand-in (2 blocks, 4 heads)', table: 'warps', base: 'synthetic-warps',
    patch: (c) => { c.model.block = [c.model.block[0], { use: 'vit', with: { width: c.model.block[0].with.out, depth: 2, heads: 4 } }]; },
  },
  { id: 'random-llm', label: 'random-init LLM layer (trained)', table: 'ablation', base: 'synthetic-warps', patch: (c) => { for (const n of llmNodes(c)) Object.assign(n.with, { init: 'random', trainable: true }); } },
  { id: 'no-posemb', label: 'w/o position embedding', table: 'ablation', base: 'synthetic-warps', patch: (c) => { c.model.tokens.with.positionEmbedding = false; } },
  { id: 'one-llm-block', label: 'one LLM pass (no inner adapter, no second pass)', table: 'ablation', base: 'synthetic-warps', patch: (c) => { c.model.block = c.model.block.slice(0, 2); } },
  { id: 'layer-first', label: 'LLM layer 0 (first)', table: 'ablation', base: 'synthetic-warps', patch: (c) => { for (const n of llmNodes(c)) n.with.layers = [0]; } },
  { id: 'layer-middle', label: 'LLM layer 14 (middle)', table: 'ablation', base: 'synthetic-warps', patch: (c) => { for (const n of llmNodes(c)) n.with.layers = [14]; } },
  { id: 'oasis-c1', label: 'LLaMA-Reg-C1', table: 'oasis', base: 'oasis-proxy', patch: (c) => { onWarpsGrid(c); c.train.lr = 0.001; } },
  { id: 'llm-morph', label: 'LLM-Morph', table: 'abdomen', base: 'abdomen-proxy' },
  {
    id: 'llm-morph-llm-free', label: 'w/o LEBs (LLM-free)', table: 'abdomen', base: 'abdomen-proxy',
    patch: (c) => { c.model.block = [c.model.block[0]]; },
  },
  { id: 'llm-morph-no-lora', label: 'LLM-Morph w/o LoRA', table: 'abdomen', base: 'abdomen-proxy', patch: (c) => { for (const n of llmNodes(c)) n.with.lora = null; } },
  {
    // The GPU path: the knee-size LLaMA-Reg-C1 (160×160×96, the paper's grid) with AMP; speed and memory.
    id: 'gpu-knee', label: 'LLaMA-Reg-C1 at 160×160×96, AMP', table: 'gpu', base: 'knee-synthetic', cudaOnly: true,
    patch: (c) => {
      const knee = JSON.parse(readFileSync(join(ROOT, 'configs', 'knee', 'config.json'), 'utf8')) as Config;
      const smol = llmNodes(c)[0];
      c.data.preprocess.shape = knee.data.preprocess.shape;
      c.model = knee.model;
      c.model.decoder = { use: 'multiscale', with: { rescaleUpsampledField: true } };
      c.loss = knee.loss;
      c.train.amp = true;
      const llm = llmNodes(c)[0];
      if (!existsSync(resolve(ROOT, llm.with.checkpoint))) {
        // LLaMA-2-7B is not on disk (never downloaded at run time): the SmolLM2 layer stands in, and the row says so.
        Object.assign(llm, { use: smol.use, with: { ...smol.with } });
        for (const b of c.model.block as Config[]) if (b.share === 'llm') b.use = smol.use;
        c.model.block[0].with.out = smol.with.hiddenSize;
        c.model.block[0].with.hidden = 128;
        c.model.block[2].with.hidden = 128;
        c.description = `(SmolLM2-135M layer standing in for LLaMA-2-7B, whose checkpoint ${knee.model.block[1].with.checkpoint} is not on disk) ${c.description}`;
      }
    },
  },
];

// The papers' Table 1 (and ablation) numbers, for reference beside ours (spec/seeds.md §1.10, §2.10).
const PAPER: Record<string, string> = {
  'llama-reg-c1': 'OASIS 77.80 / knee 68.98', 'llama-reg-cascade3': 'OASIS 78.40 / knee 71.55', voxelmorph: 'OASIS 76.42 / knee 61.63 (LLM-Morph abd. 67.14)',
  'llm-free': 'abd. 74.64 (LLM-Morph abl. 1)', vit: 'knee 67.51 (LLaMA-Reg abl. 1)', 'llm-morph': 'abd. 80.11', 'llm-morph-llm-free': 'abd. 74.64',
  'llm-morph-no-lora': 'abd. 79.44', 'random-llm': 'knee 67.39 (LLaMA 2 from scratch)', 'no-posemb': 'knee 59.37', 'one-llm-block': 'abd. 76.64 (one LEB)',
  'oasis-c1': 'OASIS 77.80', 'layer-first': '—', 'layer-middle': '—', syn: '—', 'syn-warps': '—', 'syn-abdomen': '—', 'initial-oasis': 'OASIS 49.92 (affine only)',
  'initial-abdomen': 'abd. 25.50', 'initial-warps': '—', 'gpu-knee': 'paper: 7.6 GB on one GPU (knee, batch 1)',
};

interface Summary { mean: number; std: number; n: number }
interface Row {
  id: string; label: string; table: string; proxy: string; steps?: number; trainSeconds?: number; itPerSecond?: number; peakGpuMb?: number;
  metrics: Record<string, Summary>;
  /** Per test pair (in the prepared order; seed after seed when several seeds ran), for paired comparisons. */
  perPair?: Record<string, number[]>;
  /** The seeds trained, and each seed's mean over the test pairs per metric. */
  seeds?: number[];
  perSeed?: Record<string, number[]>;
  note?: string; paper: string;
  /** When the run that produced this row started (ISO): rows kept by `--merge` come from earlier runs. */
  run?: string;
  /** The data the row was measured on (`dataIdentity`): `--merge` keeps no row measured on other data. */
  data?: string;
}

/** The proxy each table is measured on. */
const proxyOfTable = (t: string): string | undefined => (t === 'gpu' ? 'knee-synthetic' : TABLES[(t === 'ablation' ? 'warps' : t) as keyof typeof TABLES]?.proxy);

/**
 * What a generated proxy is: the generator's parameters (version, pre-alignment, source checksums) as
 * proxies.py records them in dataset.json, digested. Two proxies of one name differ when e.g. one was aligned
 * by SimpleITK and the other by the moments fallback (SimpleITK not installed): their rows must not be mixed.
 */
function dataIdentity(proxy: string): { id: string } | undefined {
  const file = join(PROXY_DATA, proxy, 'dataset.json');
  if (!existsSync(file)) return undefined;
  const params = (JSON.parse(readFileSync(file, 'utf8')) as { generator?: { params?: { aligner?: string | null } } }).generator?.params;
  if (!params) return undefined;
  const digest = createHash('sha256').update(JSON.stringify(params)).digest('hex').slice(0, 12);
  return { id: `${proxy}@${digest}${params.aligner ? ` (${params.aligner})` : ''}` };
}
const ALIGNER_TEXT: Record<string, string> = { simpleitk: 'brains affinely pre-aligned by SimpleITK', moments: 'brains only centre-of-mass + moments pre-aligned (SimpleITK was not installed)' };

/** What a run was: its budget, seeds, machine and duration (the `meta` block of accuracy.json). */
interface RunMeta { budgetMinutes?: number; steps?: number; seeds?: number[]; device?: string; machine?: string; started?: string; minutes?: string }
const budgetText = (m: RunMeta) => (m.steps ? `${m.steps} training steps per model (fixed, ${m.device}; the cascade splits them over its three phases)` : `${m.budgetMinutes} min of training per model (wall clock, ${m.device})`);

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function run(cmd: string, args: string[], what: string, cwd = ROOT): { ok: boolean; stdout: string } {
  console.log(`\n[accuracy] ${what}`);
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.stdout) process.stdout.write(r.stdout.split('\n').slice(-30).join('\n'));
  return { ok: r.status === 0, stdout: r.stdout ?? '' };
}

/** The imaging package's atomic writer, with the folder created first. */
async function writeAtomic(file: string, text: string): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  await writeFileAtomic(file, text, (where, message) => new Error(`${where}: ${message}`));
}

const fmt = (s: Summary | undefined, scale = 1, d = 2) => summaryCell(s, scale, d);
type Primary = (typeof TABLES)[keyof typeof TABLES]['primary'];
/** How much better `a` is than `b` on the table's primary metric, in display units (Dice points, mm); positive = better. */
const betterBy = (metric: Primary, a: number, b: number) => (metric === 'dice' ? 100 * (a - b) : b - a);
/** Gains over the unregistered pairs that count: a table whose best model gains less has not moved at all ... */
const TABLE_MOVED: Record<Primary, number> = { dice: 1, 'endpoint-error': 0.1 };
/** ... and a model that gains no more than this has not left identity (claims about it are not called). */
const LEFT_IDENTITY: Record<Primary, number> = { dice: 0.5, 'endpoint-error': 0.05 };

function markdown(rows: Row[], meta: Record<string, unknown>, report: string[]): string {
  const head = '| method | Dice (%) | EPE (mm) | HD95 (mm) | \\|J\\|≤0 (%) | SDlogJ | time (s/pair) | steps | paper (Dice %, their data) |\n|---|---|---|---|---|---|---|---|---|';
  const seedNote = (r: Row, t: string) => {
    const primary = TABLES[(t === 'ablation' ? 'warps' : t) as keyof typeof TABLES]?.primary;
    const v = primary ? r.perSeed?.[primary] : undefined;
    return v && v.length > 1 ? ` (per seed ${v.map((x) => (primary === 'dice' ? 100 * x : x).toFixed(primary === 'dice' ? 1 : 2)).join(' / ')})` : '';
  };
  const line = (r: Row) => `| ${r.label}${r.note ? ` (${r.note})` : ''}${seedNote(r, r.table)} | ${fmt(r.metrics.dice, 100, 1)} | ${fmt(r.metrics['endpoint-error'])} | ${fmt(r.metrics.hd95)} | ${fmt(r.metrics['jacobian-nonpositive'], 1, 3)} | ${fmt(r.metrics.sdlogj, 1, 3)} | ${fmt(r.metrics.time, 1, 3)} | ${r.steps ?? '—'} | ${r.paper} |`;
  // Say it when a table's learned models did not move away from identity: the comparison is then empty.
  const stalled = (t: string): string[] => {
    const primary = TABLES[t as keyof typeof TABLES]?.primary;
    const init = primary && rows.find((r) => r.id === `initial-${t}`)?.metrics[primary];
    const learned = rows.filter((r) => (r.table === t || (t === 'warps' && r.table === 'ablation')) && r.steps !== undefined && r.metrics[primary]?.n);
    if (!init?.n || learned.length === 0) return [];
    const gainOf = (r: Row) => betterBy(primary, r.metrics[primary]?.mean, init.mean);
    const gain = Math.max(...learned.map(gainOf));
    const unit = primary === 'dice' ? 'Dice points' : 'mm of endpoint error';
    const steps = `${Math.min(...learned.map((r) => r.steps!))}–${Math.max(...learned.map((r) => r.steps!))} training steps`;
    return gain < TABLE_MOVED[primary]
      ? [`At this budget no trained model improves on the unregistered pairs by more than ${Math.max(0, gain).toFixed(2)} ${unit} (${steps}; the best changes by ${gain.toFixed(2)}): the learned rows say nothing about the methods yet${rows.some((r) => r.table === t && r.id.startsWith('syn') && gainOf(r) >= TABLE_MOVED[primary]) ? ', while ANTs SyN shows the pairs can be registered' : ''}.`, '']
      : [];
  };
  const section = (t: string, title: string, extra: string[] = []) => {
    const own = rows.filter((r) => r.table === t);
    const data = [...new Set(own.map((r) => r.data).filter(Boolean))];
    const aligner = data.length === 1 ? ALIGNER_TEXT[/\((\w+)\)$/.exec(data[0]!)?.[1] ?? ''] : undefined;
    const dataLine = data.length ? [`Data: ${data.map((d) => `\`${d}\``).join(', ')}${aligner ? ` — ${aligner}` : ''} (bench/proxies/proxies.py's parameters, digested).`, ''] : [];
    return own.length ? [`## ${title}`, '', ...dataLine, head, ...own.map(line), '', ...extra, ...stalled(t)] : [];
  };
  const gpu = rows.filter((r) => r.table === 'gpu');
  const seedList = (meta.seeds as number[] | undefined) ?? [];
  return [
    '# Accuracy benchmark on proxies of real anatomy',
    '',
    `Budget: ${budgetText(meta as RunMeta)}, then ONNX export and native evaluation (onnxruntime-node, TypeScript metrics). ${meta.machine}. Started ${meta.started}, took ${meta.minutes} min.`,
    ...((meta.earlier as RunMeta[] | undefined) ?? []).map((m) => {
      const ids = rows.filter((r) => r.run === m.started && !r.id.startsWith('initial-')).map((r) => r.id);
      return ids.length ? `Rows kept from an earlier run (\`--merge\`): ${ids.join(', ')} — started ${m.started}, ${budgetText(m)}${m.seeds ? `, seeds ${m.seeds.join(', ')}` : ''}; ${m.machine}; took ${m.minutes} min.` : '';
    }).filter(Boolean),
    'The papers\' numbers are on their datasets (OAI knee, Learn2Reg OASIS, Learn2Reg Abdomen MR-CT) with 290K–400K iterations; ours are a few hundred steps on 2 CPU cores. They are a reference for orderings, not for values.',
    `Mean ± sample standard deviation over the test pairs${seedList.length > 1 ? ` of every seed (seeds ${seedList.join(', ')}: each learned arm trained once per seed; the per-seed means of the primary metric follow the label)` : ' (one seed per arm)'}. EPE: mean endpoint error against the true field inside the fixed brain labels.`,
    '',
    ...section('warps', TABLES.warps.title),
    ...section('ablation', 'Ablations of LLaMA-Reg-C1 on the synthetic warps', ['Compare with the LLaMA-Reg-C1 and unregistered rows of the table above (same data, same test pairs).', '']),
    ...section('oasis', TABLES.oasis.title),
    ...section('abdomen', TABLES.abdomen.title),
    ...(gpu.length ? ['## GPU path (knee-size model, AMP)', '', '| model | steps | it/s | peak GPU memory (GB) | paper |', '|---|---|---|---|---|',
      ...gpu.map((r) => `| ${r.label}${r.note ? ` (${r.note})` : ''} | ${r.steps ?? '—'} | ${r.itPerSecond?.toFixed(2) ?? '—'} | ${r.peakGpuMb !== undefined ? (r.peakGpuMb / 1024).toFixed(2) : '—'} | ${r.paper} |`), ''] : []),
    '## What replicates here',
    '',
    ...report.map((l) => `- ${l}`),
    '',
    'Not run: the LLM family swap (LLaMA 2 / Phi-3 / Qwen2) — only one pretrained family (SmolLM2, LLaMA architecture) ships in a registry package here and no weights may be downloaded at run time; the swap itself is tested on tiny local checkpoints of each family (`npm test`). The knee proxy (synthetic DESS-like intensities on real OAI labels) and the MR-US prostate pair are generated by `python bench/proxies/proxies.py` but not trained here: the budget goes to the tables above.',
    '',
  ].join('\n');
}

/** Two-sided 5 % critical values of Student's t for 1…10 degrees of freedom (larger: 1.96 is close enough). */
const T_CRIT = [NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];
const MIN_PAIRS = 3;

/**
 * Each claim checked on these data with a paired t-test over the test pairs (α = 0.05, two-sided) on the
 * table's primary metric: endpoint error where the true field is known, Dice otherwise. Called only with at
 * least MIN_PAIRS pairs, and only when at least one of the two models improves on the unregistered pairs
 * (two models still at their initialisation differ by noise, whichever way the test points). One seed per arm
 * and test pairs that share subjects: a called difference says these two trained models differ on these
 * pairs, not that the methods do in general.
 */
function replicationReport(rows: Row[]): string[] {
  const find = (id: string) => rows.find((r) => r.id === id);
  const compare = (a: string, b: string, claim: string): string => {
    const x = find(a), y = find(b);
    const table = (x?.table === 'ablation' ? 'warps' : x?.table) as keyof typeof TABLES | undefined;
    const metric: Primary = table && TABLES[table] ? TABLES[table].primary : 'dice';
    let xs = x?.perPair?.[metric], ys = y?.perPair?.[metric];
    // A deterministic arm (SyN) has one value per pair: it meets every seed of the other arm.
    if (xs?.length && ys?.length && xs.length !== ys.length && Math.max(xs.length, ys.length) % Math.min(xs.length, ys.length) === 0) {
      const n = Math.max(xs.length, ys.length);
      const tile = (v: number[]) => Array.from({ length: n }, (_, i) => v[i % v.length]);
      [xs, ys] = [tile(xs), tile(ys)];
    }
    if (!xs?.length || !ys?.length || xs.length !== ys.length) return `${claim}: not measured (an arm is missing or failed).`;
    const d = xs.map((v, i) => betterBy(metric, v, ys[i])).filter(Number.isFinite); // positive: a better than b
    const n = d.length;
    const mean = d.reduce((s, v) => s + v, 0) / n;
    const sd = n > 1 ? Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : 0;
    const scale = metric === 'dice' ? 100 : 1;
    const unit = metric === 'dice' ? 'Dice %' : 'mm EPE';
    const mx = x!.metrics[metric].mean * scale, my = y!.metrics[metric].mean * scale;
    const numbers = `${mx.toFixed(2)} vs ${my.toFixed(2)} ${unit} (${(x!.seeds?.length ?? 1) > 1 ? `${n} pair × seed values` : `${n} test pair(s)`}, paired difference ${mean.toFixed(2)} ± ${sd.toFixed(2)} in the claim's favour)`;
    const init = find(`initial-${table}`)?.metrics[metric];
    const improves = (v: number) => init?.n ? betterBy(metric, v, init.mean) > LEFT_IDENTITY[metric] : true;
    if (!improves(x!.metrics[metric].mean) && !improves(y!.metrics[metric].mean)) {
      return `${claim}: ${numbers} — not called: neither model improves on the unregistered pairs (${(init!.mean * scale).toFixed(2)} ${unit}) at this budget.`;
    }
    if (n < MIN_PAIRS) return `${claim}: ${numbers} — not called: fewer than ${MIN_PAIRS} test pairs (${mean > 0 ? 'points the paper\'s way' : mean < 0 ? 'points against the paper' : 'no difference'}, indicative only).`;
    const t = sd > 0 ? mean / (sd / Math.sqrt(n)) : mean === 0 ? 0 : Math.sign(mean) * Infinity;
    const crit = T_CRIT[n - 1] ?? 1.96;
    const verdict = Math.abs(t) < crit ? `not resolved (paired t = ${t.toFixed(2)}, |t| < ${crit})` : t > 0 ? `replicates here (paired t = ${t.toFixed(2)})` : `does not replicate here: the opposite holds (paired t = ${t.toFixed(2)})`;
    return `${claim}: ${numbers} — ${verdict}.`;
  };
  /** Issue #15's bar: the learned model's endpoint error at most two thirds of the unregistered pairs', in every seed. */
  const cutsByAThird = (a: string, claim: string): string => {
    const x = find(a), init = find('initial-warps')?.metrics['endpoint-error'];
    const perSeed = x?.perSeed?.['endpoint-error'] ?? (x?.metrics['endpoint-error']?.n ? [x.metrics['endpoint-error'].mean] : undefined);
    if (!perSeed?.length || !init?.n) return `${claim}: not measured (an arm is missing or failed).`;
    const ratios = perSeed.map((v) => v / init.mean);
    const numbers = `EPE ${perSeed.map((v) => v.toFixed(2)).join(' / ')} mm vs ${init.mean.toFixed(2)} unregistered (ratio ${ratios.map((r) => r.toFixed(2)).join(' / ')}, ${perSeed.length} seed(s))`;
    if (perSeed.length < 3) return `${claim}: ${numbers} — not called: fewer than 3 seeds.`;
    return `${claim}: ${numbers} — ${ratios.every((r) => r <= 2 / 3) ? 'holds in every seed' : ratios.some((r) => r <= 2 / 3) ? 'holds in some seeds only: not called' : 'does not hold'}.`;
  };
  return [
    cutsByAThird('llama-reg-c1', 'LLaMA-Reg-C1 cuts the endpoint error by a third against identity (synthetic warps)'),
    cutsByAThird('voxelmorph', 'the VoxelMorph-style U-Net cuts the endpoint error by a third against identity (synthetic warps)'),
    compare('llama-reg-c1', 'voxelmorph', 'LLaMA-Reg-C1 beats a VoxelMorph-style U-Net'),
    compare('llama-reg-cascade3', 'llama-reg-c1', 'the 3-step cascade beats C1'),
    compare('llama-reg-c1', 'llm-free', 'the pretrained LLM layers help (vs the LLM-free model)'),
    compare('llama-reg-c1', 'vit', 'a pretrained LLM layer beats a ViT stand-in'),
    compare('llama-reg-c1', 'random-llm', 'pretrained beats random-init LLM layers'),
    compare('llama-reg-c1', 'no-posemb', 'position embedding helps'),
    compare('llama-reg-c1', 'one-llm-block', 'two LLM passes beat one'),
    compare('llama-reg-c1', 'layer-first', 'the last layer beats the first'),
    compare('llama-reg-c1', 'layer-middle', 'the last layer beats a middle one'),
    compare('llama-reg-c1', 'syn-warps', 'LLaMA-Reg-C1 beats ANTs SyN (synthetic warps)'),
    compare('oasis-c1', 'syn', 'LLaMA-Reg-C1 beats ANTs SyN (OASIS proxy)'),
    compare('llm-morph', 'llm-morph-llm-free', 'LLM-Morph\'s LEBs help (abdomen)'),
    compare('llm-morph', 'llm-morph-no-lora', 'LoRA helps LLM-Morph (abdomen)'),
    compare('llm-morph', 'syn-abdomen', 'LLM-Morph beats ANTs SyN (abdomen)'),
  ];
}

/** SyN's saved fields (bench/accuracy/syn.py) as a field source for evaluateExport. */
function synFieldSource(synDir: string, cfg: Config, shape: number[]): FieldSource {
  const syn = JSON.parse(readFileSync(join(synDir, 'syn.json'), 'utf8')) as { antspyx: string; pairs: { moving: string; fixed: string; field: string; seconds: number }[] };
  return {
    experiment: `${cfg.name} (ANTs SyN)`,
    shape,
    labels: cfg.evaluate?.labels,
    labelNames: cfg.data.labelNames,
    dataTitle: cfg.data.title,
    origin: { export: synDir, sourceRun: `antspyx ${syn.antspyx} SyNOnly`, checkpoint: '—', step: 0 },
    where: join(synDir, 'syn.json'),
    async field(pair) {
      const s = syn.pairs.find((q) => q.moving === pair.moving && q.fixed === pair.fixed);
      if (!s) throw new Error(`${join(synDir, 'syn.json')}: no SyN field for ${pair.moving} → ${pair.fixed}`);
      const buf = readFileSync(join(synDir, s.field));
      return { field: new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)), seconds: s.seconds };
    },
  };
}

/** The model row of an evaluation table, with per-pair values for the paired tests. */
function rowMetrics(table: EvaluationTable, which: 'initial' | 'registered'): { metrics: Record<string, Summary>; perPair: Record<string, number[]> } {
  const metrics = table.rows[which === 'initial' ? 0 : 1].metrics;
  const perPair: Record<string, number[]> = {};
  for (const p of table.perPair) for (const [id, v] of Object.entries(p[which])) (perPair[id] ??= []).push(v);
  return { metrics, perPair };
}

/** One row from the same arm trained with several seeds: the test pairs of every seed pooled (seed after seed). */
function pooledOverSeeds(tables: EvaluationTable[], seeds: number[]): Pick<Row, 'metrics' | 'perPair' | 'perSeed' | 'seeds'> {
  const perPair: Record<string, number[]> = {};
  const perSeed: Record<string, number[]> = {};
  for (const t of tables) {
    for (const [id, values] of Object.entries(rowMetrics(t, 'registered').perPair)) {
      (perPair[id] ??= []).push(...values);
      (perSeed[id] ??= []).push(meanStd(values).mean);
    }
  }
  const metrics: Record<string, Summary> = Object.fromEntries(Object.entries(perPair).map(([id, values]) => [id, meanStd(values)]));
  return tables.length === 1 ? { ...rowMetrics(tables[0], 'registered'), seeds } : { metrics, perPair, perSeed, seeds: seeds.slice(0, tables.length) };
}

async function main(): Promise<void> {
  if (process.argv.includes('--report-only')) {
    // Re-derive the report and the markdown from bench/results/accuracy.json (no training).
    const saved = JSON.parse(readFileSync(join(RESULTS, 'accuracy.json'), 'utf8')) as { rows: Row[] } & Record<string, unknown>;
    for (const r of saved.rows) r.paper = PAPER[r.id] ?? r.paper;
    const report = replicationReport(saved.rows);
    await writeAtomic(join(RESULTS, 'accuracy.json'), `${JSON.stringify({ ...saved, report }, jsonNumbers, 2)}\n`);
    await writeAtomic(join(RESULTS, 'accuracy.md'), markdown(saved.rows, saved, report));
    console.log(`[accuracy] report rewritten from bench/results/accuracy.json`);
    return;
  }
  const t0 = Date.now();
  const budget = Number(flag('budget-minutes') ?? 2.25);
  const fixedSteps = flag('steps') !== undefined ? Number(flag('steps')) : undefined;
  if (fixedSteps !== undefined && !(Number.isInteger(fixedSteps) && fixedSteps > 0)) throw new Error(`--steps must be a positive integer, not '${flag('steps')}'`);
  const device = flag('device') ?? 'cpu';
  const seeds = (flag('seeds') ?? '0').split(',').map(Number);
  if (!seeds.length || seeds.some((v) => !Number.isInteger(v) || v < 0)) throw new Error(`--seeds must be non-negative integers separated by commas, not '${flag('seeds')}'`);
  const only = flag('only')?.split(',');
  const withSyn = !process.argv.includes('--no-syn');
  const started = new Date().toISOString();
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, load ${loadavg().map((x) => x.toFixed(2)).join('/')} at start`;
  mkdirSync(WORK, { recursive: true });
  const registry = await loadRegistry(loadWorkspace(ROOT));
  LLM_FAMILIES = registry.list().filter((d) => d.kind === 'LLMBackbone' && 'checkpoint' in ((d.options.properties as object) ?? {})).map((d) => d.id);
  const metricIds = ['dice', 'hd95', 'jacobian-nonpositive', 'sdlogj', 'endpoint-error'];
  const metrics: MetricPlugin[] = metricIds.map((id) => ({ id, runtime: registry.get(id, 'Metric').runtime as MetricRuntime }));
  const wanted = (id: string) => !only || only.includes(id);
  const arms = ARMS.filter((a) => wanted(a.id) && (!a.cudaOnly || device === 'cuda'));
  const tablesUsed = new Set<TableId>(arms.map((a) => (a.table === 'ablation' ? 'warps' : a.table)));
  for (const [t, info] of Object.entries(TABLES)) if (withSyn && wanted(info.syn)) tablesUsed.add(t as TableId);

  // 1. proxies (deterministic; skipped when up to date)
  const proxies = new Set([...tablesUsed].map((t) => (t === 'gpu' ? 'knee-synthetic' : TABLES[t as keyof typeof TABLES]?.proxy)).filter(Boolean));
  for (const proxy of proxies) {
    const r = run(PYTHON, [join(ROOT, 'bench', 'proxies', 'proxies.py'), proxy!, '--quiet'], `proxy ${proxy}`, ROOT);
    if (!r.ok) throw new Error(`generating ${proxy} failed (see above)`);
  }
  const rows: Row[] = [];
  const initial: Record<string, Row> = {};
  // The prepared folder of each table's first arm: SyN registers the same prepared pairs.
  const preparedOf: Record<string, { dir: string; cfg: Config }> = {};
  let c1Steps: number | undefined;
  // --merge: the saved rows of every arm (and unregistered row) this run does not produce again
  const rerun = new Set([...arms.map((a) => a.id), ...[...tablesUsed].map((t) => `initial-${t}`)]);
  for (const [t, info] of Object.entries(TABLES)) if (withSyn && wanted(info.syn)) rerun.add(info.syn).add(`initial-${t}`);
  const saved = process.argv.includes('--merge') && existsSync(join(RESULTS, 'accuracy.json'))
    ? (JSON.parse(readFileSync(join(RESULTS, 'accuracy.json'), 'utf8')) as RunMeta & { rows: Row[]; earlier?: RunMeta[] })
    : undefined;
  // Only rows measured on the data this run measures on: a proxy regenerated differently (another generator
  // version, SimpleITK present or not) makes every earlier row of its tables incomparable.
  // The proxies are generated above and do not change during the run: each one's identity is read once.
  const identities = new Map<string, string | undefined>();
  const currentData = (t: string) => {
    const p = proxyOfTable(t);
    if (p && !identities.has(p)) identities.set(p, dataIdentity(p)?.id);
    return p ? identities.get(p) : undefined;
  };
  const kept = (saved?.rows ?? []).filter((r) => !rerun.has(r.id)).filter((r) => {
    const now = currentData(r.table);
    if (now === undefined || r.data === now) return true;
    console.log(`[accuracy] --merge drops the saved row ${r.id}: it was measured on ${r.data ?? 'data of unrecorded identity'}, this run's ${r.table} data are ${now}`);
    return false;
  }).map((r) => ({ ...r, run: r.run ?? saved!.started }));
  const earlier: RunMeta[] = saved
    ? [...(saved.earlier ?? []), { budgetMinutes: saved.budgetMinutes, steps: saved.steps, seeds: saved.seeds, device: saved.device, machine: saved.machine, started: saved.started, minutes: saved.minutes }]
        .filter((m) => kept.some((r) => r.run === m.started))
    : [];
  const meta = () => ({ budgetMinutes: fixedSteps ? undefined : budget, steps: fixedSteps, seeds, device, machine, started, minutes: ((Date.now() - t0) / 60000).toFixed(1), ...(earlier.length ? { earlier } : {}) });
  const save = async (report: string[] = []) => {
    const own = [...Object.values(initial), ...rows].map((r) => ({ ...r, run: started, data: currentData(r.table) }));
    const all = [...kept.filter((r) => r.id.startsWith('initial-')), ...own.filter((r) => r.id.startsWith('initial-')), ...kept.filter((r) => !r.id.startsWith('initial-')), ...own.filter((r) => !r.id.startsWith('initial-'))];
    await writeAtomic(join(RESULTS, 'accuracy.json'), `${JSON.stringify({ ...meta(), rows: all, report }, jsonNumbers, 2)}\n`);
    await writeAtomic(join(RESULTS, 'accuracy.md'), markdown(all, meta(), report));
  };
  const failed = async (arm: Pick<Arm, 'id' | 'label' | 'table'>, proxy: string, note: string) => {
    rows.push({ id: arm.id, label: arm.label, table: arm.table, proxy, metrics: {}, note, paper: PAPER[arm.id] ?? '—' });
    await save();
  };

  for (const arm of arms) {
    const base = JSON.parse(readFileSync(join(ROOT, 'configs', arm.base, 'config.json'), 'utf8')) as Config;
    const cfg = structuredClone(base);
    cfg.train = fixedSteps
      ? { ...cfg.train, iterations: fixedSteps, timeBudgetMinutes: 0, validateEvery: 50, checkpointEvery: 50 }
      : { ...cfg.train, iterations: 1_000_000, timeBudgetMinutes: budget, validateEvery: 50, checkpointEvery: 50 };
    arm.patch?.(cfg, { c1Steps: fixedSteps ?? c1Steps });
    if (arm.table === 'gpu') Object.assign(cfg.train, { iterations: 300, timeBudgetMinutes: budget, validateEvery: 100, checkpointEvery: 100 });
    cfg.name = arm.id;
    cfg.description = `${arm.label} — accuracy benchmark arm ${arm.id} (${cfg.description})`;
    const armDir = join(WORK, arm.id);
    // The config's folder names the experiment (and so its .cache/prepared/<name> folder): one per arm and seed,
    // never a bare `seed-0` that every arm would share.
    const experimentOf = (seed: number) => (seeds.length > 1 ? `${arm.id}-seed-${seed}` : arm.id);
    const cfgFile = (seed: number) => join(armDir, seeds.length > 1 ? experimentOf(seed) : '', 'config.json');
    const tables: EvaluationTable[] = [];
    let trainSeconds = 0, steps = 0, itPerSecond: number | undefined, peakGpuMb: number | undefined, broken: string | undefined;
    for (const seed of arm.table === 'gpu' ? seeds.slice(0, 1) : seeds) {
      const seeded = { ...structuredClone(cfg), train: { ...cfg.train, seed } };
      await writeAtomic(cfgFile(seed), `${JSON.stringify(seeded, null, 2)}\n`);
      const seedDir = dirname(cfgFile(seed));
      const runDir = join(seedDir, `run-${Date.now()}`);
      const tTrain = Date.now();
      const trained = run(process.execPath, [CLI, 'train', cfgFile(seed), '--run-dir', runDir, '--device', device], `train ${arm.id} seed ${seed} (${fixedSteps ? `${fixedSteps} steps` : `${budget} min`}, ${device})`);
      trainSeconds += (Date.now() - tTrain) / 1000;
      if (!trained.ok) { broken = `training failed (seed ${seed})`; break; }
      const events = readFileSync(join(runDir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
      const stepEvents = events.filter((e) => e.event === 'step');
      const end = events.reverse().find((e) => e.event === 'done' || e.event === 'stopped');
      itPerSecond = stepEvents.length > 1 ? (stepEvents.length - 1) / (stepEvents[stepEvents.length - 1].time - stepEvents[0].time) : undefined;
      peakGpuMb = end?.peak_cuda_mb;
      steps = (JSON.parse(readFileSync(join(runDir, 'checkpoints', 'last.json'), 'utf8')) as { step: number }).step;
      if (arm.table === 'gpu') break;
      const evalDir = join(seedDir, 'eval');
      const evaluated = run(process.execPath, [CLI, 'evaluate', runDir, '--out', evalDir, '--pictures', '1', '--metrics', [...metricIds, 'time'].join(',')], `evaluate ${arm.id} seed ${seed}`);
      if (!evaluated.ok) { broken = `evaluation failed (seed ${seed})`; break; }
      tables.push(JSON.parse(readFileSync(join(evalDir, 'table.json'), 'utf8')) as EvaluationTable);
    }
    if (broken) { await failed(arm, cfg.name, broken); continue; }
    if (arm.id === 'llama-reg-c1') c1Steps = steps;
    if (arm.table === 'gpu') {
      const standIn = llmNodes(cfg)[0]?.with.hiddenSize !== 4096 ? 'SmolLM2-135M layer standing in for LLaMA-2-7B' : undefined;
      rows.push({ id: arm.id, label: arm.label, table: 'gpu', proxy: cfg.name, steps, trainSeconds, itPerSecond, peakGpuMb, metrics: {}, note: standIn, paper: PAPER[arm.id] });
      await save();
      continue;
    }
    const proxyTable = arm.table === 'ablation' ? 'warps' : arm.table;
    preparedOf[proxyTable] ??= { dir: preparedDir(ROOT, experimentOf(seeds[0])), cfg };
    initial[proxyTable] ??= { id: `initial-${proxyTable}`, label: 'Initial (no registration)', table: proxyTable, proxy: cfg.name, ...rowMetrics(tables[0], 'initial'), paper: PAPER[`initial-${proxyTable}`] ?? '—' };
    rows.push({ id: arm.id, label: arm.label, table: arm.table, proxy: cfg.name, steps, trainSeconds: trainSeconds / tables.length, itPerSecond, ...pooledOverSeeds(tables, seeds), paper: PAPER[arm.id] ?? '—' });
    await save();
  }

  if (withSyn) {
    for (const [t, info] of Object.entries(TABLES) as [keyof typeof TABLES, (typeof TABLES)[keyof typeof TABLES]][]) {
      if (!wanted(info.syn)) continue;
      const arm = { id: info.syn, label: 'ANTs SyN (antspyx, SyNOnly)', table: t };
      let prepared = preparedOf[t];
      if (!prepared) {
        // No trained arm of this table ran: prepare its data under the table's experiment name.
        const cfg = JSON.parse(readFileSync(join(ROOT, 'configs', info.config, 'config.json'), 'utf8')) as Config;
        if (t === 'oasis') onWarpsGrid(cfg);
        cfg.name = info.syn;
        const cfgFile = join(WORK, info.syn, 'config.json');
        await writeAtomic(cfgFile, `${JSON.stringify(cfg, null, 2)}\n`);
        if (!run(process.execPath, [CLI, 'data', 'prepare', cfgFile], `prepare ${info.config} for SyN`).ok) { await failed(arm, info.config, 'data not prepared'); continue; }
        prepared = { dir: preparedDir(ROOT, info.syn), cfg };
      }
      const out = join(WORK, info.syn);
      console.log(`\n[accuracy] ANTs SyN on ${info.config}`);
      const r = spawnSync(PYTHON, [join(ROOT, 'bench', 'accuracy', 'syn.py'), prepared.dir, join(out, 'fields')], { cwd: ROOT, stdio: 'inherit' });
      if (r.status === 3) { await failed(arm, info.config, 'skipped: antspyx not installed'); continue; }
      if (r.status !== 0) { await failed(arm, info.config, 'failed'); continue; }
      const { table } = await evaluateExport({
        fields: synFieldSource(join(out, 'fields'), prepared.cfg, prepared.cfg.data.preprocess.shape), preparedDir: prepared.dir, out: join(out, 'eval'),
        metrics, pictures: 1, method: arm.label,
      });
      initial[t] ??= { id: `initial-${t}`, label: 'Initial (no registration)', table: t, proxy: info.config, ...rowMetrics(table, 'initial'), paper: PAPER[`initial-${t}`] ?? '—' };
      rows.push({ ...arm, proxy: info.config, ...rowMetrics(table, 'registered'), paper: PAPER[info.syn] ?? '—' });
      await save();
    }
  }

  const report = replicationReport([...kept, ...Object.values(initial), ...rows]);
  await save(report);
  console.log(`\n[accuracy] written bench/results/accuracy.md and .json in ${((Date.now() - t0) / 60000).toFixed(1)} min`);
}

main().catch((e) => {
  console.error(`error[bench] ${(e as Error).message}`);
  process.exit(1);
});
