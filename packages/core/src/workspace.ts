/**
 * The llmed workspace file (`workspace.json` at the repository root): experiments by name and the plugin
 * packages to load. Nx ignores a root workspace.json since Nx 16, so llmed owns it; the local Nx plugin
 * reads the same file to infer one project per experiment.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { configError, didYouMean, LlmedError } from './errors.ts';

export interface WorkspaceFile {
  /** Experiment name → config file, relative to the workspace root. */
  experiments: Record<string, string>;
  /** Plugin packages: npm package names or relative folders; a trailing `/*` means every package folder below. */
  plugins: string[];
}

export interface Workspace extends WorkspaceFile { root: string; file: string }

/** Walk up from `start` to the folder holding workspace.json (or $LLMED_WORKSPACE). */
export function findWorkspaceRoot(start = process.cwd()): string {
  const fromEnv = process.env.LLMED_WORKSPACE;
  if (fromEnv) {
    if (!existsSync(join(fromEnv, 'workspace.json'))) throw configError(fromEnv, 'LLMED_WORKSPACE points at a folder without workspace.json');
    return resolve(fromEnv);
  }
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, 'workspace.json')) && existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new LlmedError('config', 'no workspace.json found in this folder or any parent', { where: start, hint: 'run llmed inside an llmed workspace, or set LLMED_WORKSPACE' });
    dir = up;
  }
}

export function readJsonFile(file: string): unknown {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) {
    throw configError(file, `cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try { return JSON.parse(text); } catch (e) {
    throw configError(file, `not valid JSON: ${(e as Error).message}`);
  }
}

export function loadWorkspace(root = findWorkspaceRoot()): Workspace {
  const file = join(root, 'workspace.json');
  const raw = readJsonFile(file) as Partial<WorkspaceFile>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw configError(file, 'must be a JSON object with "experiments" and "plugins"');
  const experiments = raw.experiments ?? {};
  const plugins = raw.plugins ?? [];
  if (typeof experiments !== 'object' || Array.isArray(experiments)) throw configError(`${file} experiments`, 'must map experiment names to config files');
  for (const [name, cfg] of Object.entries(experiments)) {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw configError(`${file} experiments.${name}`, 'experiment names are lower-case letters, digits and dashes');
    if (typeof cfg !== 'string') throw configError(`${file} experiments.${name}`, 'must be a path to a config.json');
  }
  if (!Array.isArray(plugins) || plugins.some((p) => typeof p !== 'string')) throw configError(`${file} plugins`, 'must be a list of package names or folders');
  return { root, file, experiments, plugins };
}

/**
 * Resolve `knee` (an experiment name) or `path/to/config.json` (a file) to an absolute config path
 * and the experiment's name.
 */
export function resolveExperiment(ws: Workspace, nameOrPath: string): { name: string; configFile: string } {
  if (ws.experiments[nameOrPath]) return { name: nameOrPath, configFile: resolve(ws.root, ws.experiments[nameOrPath]) };
  const asPath = isAbsolute(nameOrPath) ? nameOrPath : resolve(process.cwd(), nameOrPath);
  if (existsSync(asPath)) {
    const file = statSync(asPath).isDirectory() ? join(asPath, 'config.json') : asPath;
    if (!existsSync(file)) throw configError(asPath, 'folder has no config.json');
    const known = Object.entries(ws.experiments).find(([, f]) => resolve(ws.root, f) === file);
    const name = known ? known[0] : relative(ws.root, dirname(file)).split(/[\\/]/).pop() || 'experiment';
    return { name, configFile: file };
  }
  throw configError(nameOrPath, `no experiment or config file by this name${didYouMean(nameOrPath, Object.keys(ws.experiments))}; experiments: ${Object.keys(ws.experiments).join(', ') || '(none)'}`);
}
