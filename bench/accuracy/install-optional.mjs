// The accuracy benchmark's optional Python dependency, pinned in bridge/python/requirements-bench.txt: antspyx
// (the ANTs SyN baseline). Installed into the project's .venv when missing; when it cannot be installed the
// benchmark still runs and its SyN rows say "skipped". Only this pin is installed: the file also pins
// llama-cpp-python for the decode benchmark, a source build of about 45 min. (SimpleITK, which the proxies'
// pre-alignment needs, is a core requirement that setup installs.)
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const python = join(process.cwd(), '.venv', 'bin', 'python');
const requirements = join(process.cwd(), 'bridge', 'python', 'requirements-bench.txt');
const pins = readFileSync(requirements, 'utf8')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line.toLowerCase().startsWith('antspyx=='));
const have = spawnSync(python, ['-c', 'import ants'], { stdio: 'ignore' }).status === 0;
if (!have) {
  console.log(`[bench:accuracy] installing the optional SyN baseline (${pins.join(', ')}, pinned in bridge/python/requirements-bench.txt) into .venv`);
  const r = spawnSync(python, ['-m', 'pip', 'install', '--quiet', ...pins], { stdio: 'inherit' });
  if (r.status !== 0) console.log('[bench:accuracy] antspyx could not be installed: the SyN rows say "skipped"');
}
