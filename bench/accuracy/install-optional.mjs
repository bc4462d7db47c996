// The accuracy benchmark's optional Python dependency: antspyx (ANTs SyN baseline), pinned. Installed into
// the project's .venv when missing; when it cannot be installed the benchmark runs without SyN and says so.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const python = join(process.cwd(), '.venv', 'bin', 'python');
const have = spawnSync(python, ['-c', 'import ants'], { stdio: 'ignore' }).status === 0;
if (!have) {
  console.log('[bench:accuracy] installing the optional ANTs baseline (antspyx==0.6.3) into .venv');
  const r = spawnSync(python, ['-m', 'pip', 'install', '--quiet', 'antspyx==0.6.3'], { stdio: 'inherit' });
  if (r.status !== 0) console.log('[bench:accuracy] antspyx could not be installed: the SyN rows will say "skipped"');
}
