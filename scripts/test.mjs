#!/usr/bin/env node
// `npm test`: the checks (type check, eslint, ruff lint and format), the TypeScript suite (vitest) and the Python suite
// (pytest), then one line per step ("PASS lint: eslint" ...) and one closing line "N passed, N failed,
// N skipped" covering both suites, each check counted as one test. Exit status non-zero when any step fails.
// With arguments (`npm test -- <vitest filters>`) only vitest runs, with those arguments.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, '.cache', 'test-results');
mkdirSync(out, { recursive: true });
const extra = process.argv.slice(2);

const totals = { passed: 0, failed: 0, skipped: 0 };
let status = 0;
const steps = [];
const step = (name, ok) => {
  steps.push(`${ok ? 'PASS' : 'FAIL'} ${name}`);
  if (!ok) status = 1;
};

// Checks: each is one pass/fail step, counted as one test in the closing line.
if (extra.length === 0) {
  const checks = [
    ['type check (tsc -p tsconfig.json --noEmit)', join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json', '--noEmit']],
    ['lint: eslint (eslint.config.js)', join(root, 'node_modules', '.bin', 'eslint'), ['.']],
    ['lint: ruff (ruff.toml)', join(root, '.venv', 'bin', 'ruff'), ['check', '.']],
    ['format: ruff format --check (ruff.toml)', join(root, '.venv', 'bin', 'ruff'), ['format', '--check', '.']],
  ];
  for (const [name, cmd, args] of checks) {
    console.log(`\n> ${name}`);
    const ok = existsSync(cmd) && spawnSync(cmd, args, { cwd: root, stdio: 'inherit' }).status === 0;
    if (!existsSync(cmd)) console.error(`${cmd} is missing: run \`npm run setup\` (it installs package.json's and bridge/python/requirements.txt's pins)`);
    step(name, ok);
    if (ok) totals.passed += 1;
    else totals.failed += 1;
  }
}

// TypeScript
const vitestJson = join(out, 'vitest.json');
const v = spawnSync(join(root, 'node_modules', '.bin', 'vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${vitestJson}`, ...extra], { cwd: root, stdio: 'inherit' });
if (existsSync(vitestJson)) {
  const r = JSON.parse(readFileSync(vitestJson, 'utf8'));
  totals.passed += r.numPassedTests ?? 0;
  totals.failed += r.numFailedTests ?? 0;
  totals.skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  if ((r.numFailedTestSuites ?? 0) > 0 && (r.numFailedTests ?? 0) === 0) totals.failed += r.numFailedTestSuites;
}
step('vitest', v.status === 0);

// Python
const py = join(root, '.venv', 'bin', 'python');
const pyTests = join(root, 'bridge', 'python', 'tests');
if (existsSync(pyTests) && extra.length === 0) {
  const junit = join(out, 'pytest.xml');
  // The bridge's tests, the plugin folders' own (plugins/<id>/tests/test_*.py, as pyproject's testpaths), and the
  // Python tools outside the package (bench/proxies builds the benchmark's datasets).
  const pyDirs = ['tests', join('..', '..', 'plugins'), join(root, 'bench', 'proxies', 'tests')].filter((d) => existsSync(resolve(root, 'bridge', 'python', d)));
  const p = spawnSync(py, ['-m', 'pytest', '-q', '-rs', `--junitxml=${junit}`, ...pyDirs], { cwd: join(root, 'bridge', 'python'), stdio: 'inherit', env: { ...process.env, PYTHONUNBUFFERED: '1' } });
  if (existsSync(junit)) {
    const xml = readFileSync(junit, 'utf8');
    const m = xml.match(/<testsuite [^>]*>/);
    const attr = (k) => Number(m?.[0].match(new RegExp(`${k}="(\\d+)"`))?.[1] ?? 0);
    const tests = attr('tests'), failures = attr('failures'), errors = attr('errors'), skipped = attr('skipped');
    totals.failed += failures + errors;
    totals.skipped += skipped;
    totals.passed += tests - failures - errors - skipped;
  }
  // pytest exits 5 when it collects nothing; that is a failure of the suite here, not a pass.
  step('pytest', p.status === 0);
}

console.log(`\n${steps.join('\n')}`);
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(status);
