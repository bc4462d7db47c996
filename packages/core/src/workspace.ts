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

/** What an experiment name may be (it names folders: runs/<name>/, .cache/prepared/<name>/). */
export const EXPERIMENT_NAME = /^[a-z0-9][a-z0-9-]*$/;

/** Throw a config error at `where` unless `name` is a valid experiment name. */
export function checkExperimentName(name: string, where: string, hint?: string): string {
  if (!EXPERIMENT_NAME.test(name)) {
    throw configError(where, `experiment name ${JSON.stringify(name)} is not valid: experiment names are lower-case letters, digits and dashes`, hint);
  }
  return name;
}

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

/** How deeply llmed's JSON files may nest (the deepest real config is 6 levels). */
export const MAX_JSON_DEPTH = 64;

/**
 * Why a parsed JSON value cannot be a file llmed reads, or undefined: nesting deeper than `maxDepth` (the
 * recursive code behind it would overflow the stack) or a number JSON.parse turned into ±Infinity (`1e999`).
 * Iterative, so a hostile file cannot overflow the stack here either.
 */
export function jsonProblem(value: unknown, maxDepth = MAX_JSON_DEPTH): { path: string; message: string } | undefined {
  const stack: [unknown, string, number][] = [[value, '', 0]];
  while (stack.length) {
    const [v, path, depth] = stack.pop()!;
    if (typeof v === 'number' && !Number.isFinite(v)) return { path: path || '(top level)', message: 'is not a finite number (a literal too large for a double, such as 1e999, reads as Infinity)' };
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= maxDepth) return { path: path.length > 60 ? `${path.slice(0, 60)}…` : path || '(top level)', message: `nests more than ${maxDepth} levels deep` };
    if (Array.isArray(v)) v.forEach((x, i) => stack.push([x, `${path}[${i}]`, depth + 1]));
    else for (const [k, x] of Object.entries(v)) stack.push([x, path ? `${path}.${k}` : k, depth + 1]);
  }
  return undefined;
}

export function readJsonFile(file: string): unknown {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) {
    throw configError(file, `cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let value: unknown;
  try { value = JSON.parse(text); } catch (e) {
    throw configError(file, `not valid JSON: ${(e as Error).message}`);
  }
  const problem = jsonProblem(value);
  if (problem) throw configError(`${file} ${problem.path}`, problem.message);
  return value;
}

export function loadWorkspace(root = findWorkspaceRoot()): Workspace {
  const file = join(root, 'workspace.json');
  const raw = readJsonFile(file) as Partial<WorkspaceFile>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw configError(file, 'must be a JSON object with "experiments" and "plugins"');
  const experiments = raw.experiments ?? {};
  const plugins = raw.plugins ?? [];
  if (typeof experiments !== 'object' || Array.isArray(experiments)) throw configError(`${file} experiments`, 'must map experiment names to config files');
  for (const [name, cfg] of Object.entries(experiments)) {
    checkExperimentName(name, `${file} experiments.${name}`);
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
    if (known) return { name: known[0], configFile: file };
    // Named after its folder, else after its "name": the name makes folders (runs/<name>, .cache/prepared/<name>),
    // so a config outside the workspace must never be called `..`.
    const folder = relative(ws.root, dirname(file)).split(/[\\/]/).pop() ?? '';
    if (EXPERIMENT_NAME.test(folder)) return { name: folder, configFile: file };
    const own = (readJsonFile(file) as { name?: unknown } | null)?.name;
    const name = typeof own === 'string' ? own : folder;
    checkExperimentName(name, file, 'put the config in a folder named like an experiment (configs/<name>/config.json), give it a valid "name", or list it under "experiments" in workspace.json');
    return { name, configFile: file };
  }
  throw configError(nameOrPath, `no experiment or config file by this name${didYouMean(nameOrPath, Object.keys(ws.experiments))}; experiments: ${Object.keys(ws.experiments).join(', ') || '(none)'}`);
}
