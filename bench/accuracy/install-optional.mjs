// The accuracy benchmark's optional Python dependencies, pinned in bridge/python/requirements-bench.txt:
// SimpleITK (the proxies' affine pre-alignment) and antspyx (the ANTs SyN baseline). Installed into the
// project's .venv when missing; when they cannot be installed the benchmark still runs and says what it
// fell back to (moments pre-alignment in the proxies' titles, "skipped" SyN rows).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const python = join(process.cwd(), '.venv', 'bin', 'python');
const requirements = join(process.cwd(), 'bridge', 'python', 'requirements-bench.txt');
const have = spawnSync(python, ['-c', 'import ants, SimpleITK'], { stdio: 'ignore' }).status === 0;
if (!have) {
  console.log('[bench:accuracy] installing the optional benchmark dependencies (bridge/python/requirements-bench.txt: SimpleITK, antspyx) into .venv');
  const r = spawnSync(python, ['-m', 'pip', 'install', '--quiet', '-r', requirements], { stdio: 'inherit' });
  if (r.status !== 0) console.log('[bench:accuracy] they could not all be installed: the proxies fall back to moments pre-alignment and/or the SyN rows say "skipped"');
}
