/**
 * PythonSession: one Python process driven through pythonia 1.2.6, and typed calls to `llmed.api`.
 *
 * Facts this is built around (shared/TOOLCHAIN.md, checked against pythonia's source):
 * - importing pythonia spawns the interpreter named by `PYTHON_BIN`, so it is imported lazily, after
 *   PYTHON_BIN points at the workspace venv; Node never exits while the child lives, so `close()`
 *   (always called in `finally`) runs `python.exit()`;
 * - Python exceptions reach Node with an empty message, so every call goes through
 *   `llmed.api.invoke(name, argsJson) -> json`, which never raises and returns `{ok, kind, message,
 *   traceback}`; one round trip per call, the answer is plain JSON rather than a proxy;
 * - a call whose Python process died never settles, so every call races the child's `exit` event and
 *   a crash is reported at once instead of after pythonia's timeout;
 * - pythonia is a process-wide singleton: one session at a time.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LlmedError, type ErrorKind, type PythonEntry } from '@llmed/core';
import type { DescribeModelResult, EnvironmentInfo, PythonFailure, StartTrainingResult, TrainStatus } from './types.ts';

/** `bridge/python`: the folder holding the `llmed` Python package. */
export const BRIDGE_PYTHON_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'python');

/** Error kinds a Python result may carry that are llmed error kinds as they are. */
const PASS_THROUGH_KINDS: ReadonlySet<string> = new Set<ErrorKind>(['config', 'shape', 'data', 'checkpoint', 'bridge', 'plugin']);

/** An error that came from Python: an llmed error plus the Python side's kind and traceback (for --debug). */
export class PythonBridgeError extends LlmedError {
  /** The kind Python reported (`nan`, `data`, ...), before mapping onto llmed's error kinds. */
  readonly pythonKind: string;
  /** The Python traceback, when there is one. */
  readonly pythonTraceback?: string;

  constructor(failure: PythonFailure, context: string) {
    const kind: ErrorKind = PASS_THROUGH_KINDS.has(failure.kind) ? (failure.kind as ErrorKind) : 'bridge';
    const message = failure.message || `${context} failed without a message`;
    super(kind, message, { where: failure.where ?? undefined, hint: failure.hint ?? undefined });
    this.pythonKind = failure.kind;
    this.pythonTraceback = failure.traceback ?? undefined;
    if (this.pythonTraceback) this.stack = `${this.name}: ${message}\nPython traceback:\n${this.pythonTraceback}`;
  }
}

export interface SessionOptions {
  /** Workspace root; its `.venv/bin/python` is the interpreter unless PYTHON_BIN is set. */
  workspaceRoot: string;
  /** Extra folders for sys.path (plugin python roots); bridge/python is always added. */
  importPaths?: string[];
  /** Milliseconds allowed for starting Python and importing llmed.api (default 120 s). */
  startTimeoutMs?: number;
}

export interface CallOptions {
  /** Milliseconds before the call counts as hung (default 30 s). */
  timeoutMs?: number;
}

interface Pythonia {
  python: ((module: string) => Promise<any>) & { exit(): void };
  com: { proc: ChildProcess | null; start(): void };
}

type PyResult = { ok: true } & Record<string, unknown>;

/** The interpreter to use: $PYTHON_BIN, else `<workspace>/.venv/bin/python`; a missing venv is a bridge error. */
export function resolvePythonBin(workspaceRoot: string): string {
  const fromEnv = process.env.PYTHON_BIN;
  if (fromEnv) {
    if ((fromEnv.includes('/') || fromEnv.includes('\\')) && !existsSync(fromEnv)) {
      throw new LlmedError('bridge', `PYTHON_BIN is ${fromEnv}, which does not exist`, { hint: 'unset PYTHON_BIN to use the workspace .venv, or point it at a Python with the bridge requirements' });
    }
    return fromEnv;
  }
  const venvPython = process.platform === 'win32' ? join(workspaceRoot, '.venv', 'Scripts', 'python.exe') : join(workspaceRoot, '.venv', 'bin', 'python');
  if (!existsSync(venvPython)) {
    throw new LlmedError('bridge', `no Python environment at ${join(workspaceRoot, '.venv')}`, {
      hint: 'run `npm run setup` to create it (torch, transformers and the bridge requirements)',
    });
  }
  return venvPython;
}

/**
 * pythonia's PythonException has an empty message; the Python exception line ("ModuleNotFoundError: No
 * module named 'x'") is the last line of its stack. Only calls outside `llmed.api.invoke` (starting
 * Python, importing llmed.api) can raise one.
 */
export function describePythoniaError(e: unknown): string {
  const err = e as Error | undefined;
  if (err?.message?.trim()) return err.message.split('\n')[0];
  const lines = String(err?.stack ?? e ?? '').split('\n').map((l) => l.replace(/^\*\*\* (JS|PY) \*\*\*\s*/, '').trim()).filter(Boolean);
  return lines.at(-1) || 'no message from Python';
}

let activeSession: PythonSession | null = null;

export class PythonSession {
  /** Rejects (with a bridge error) when the Python process exits while the session is open. */
  readonly exited: Promise<never>;
  private closed = false;
  private deathError: LlmedError | null = null;
  private api: any = null;

  private constructor(private readonly py: Pythonia, readonly proc: ChildProcess, readonly pythonBin: string) {
    this.exited = new Promise<never>((_, reject) => {
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.closed) return;
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        this.deathError = new LlmedError('bridge', `the Python process (pid ${proc.pid}) ${how}`, {
          hint: 'look above for Python output (out of memory? killed?); a training run keeps its last checkpoint and can be resumed',
        });
        reject(this.deathError);
      };
      if (proc.exitCode !== null || proc.signalCode !== null) onExit(proc.exitCode, proc.signalCode);
      else proc.once('exit', onExit);
    });
    this.exited.catch(() => undefined); // observed by whoever races it; never an unhandled rejection
  }

  /** Start Python (or fail with a bridge error saying what to do), put the bridge on sys.path, import llmed.api. */
  static async open(opts: SessionOptions): Promise<PythonSession> {
    if (activeSession && !activeSession.closed) {
      throw new LlmedError('bridge', 'a Python session is already open in this process', { hint: 'close it first (pythonia runs one interpreter per Node process)' });
    }
    const pythonBin = resolvePythonBin(opts.workspaceRoot);
    process.env.PYTHON_BIN = pythonBin;
    let py: Pythonia;
    try {
      const mod: any = await import('pythonia');
      py = (mod.default ?? mod) as Pythonia;
    } catch (e) {
      throw new LlmedError('bridge', `cannot load pythonia: ${(e as Error).message}`, { hint: 'run `npm install` (pythonia 1.2.6 is a dependency of @llmed/bridge)', cause: e });
    }
    // The first import spawned the child; after an earlier session's exit() it has to be started again.
    if (!py.com.proc) py.com.start();
    const proc = py.com.proc!;
    const session = new PythonSession(py, proc, pythonBin);
    activeSession = session;
    try {
      const startMs = opts.startTimeoutMs ?? 120_000;
      const sys = await session.race(py.python('sys'), startMs, 'starting Python');
      for (const path of [BRIDGE_PYTHON_ROOT]) await session.race(sys.path.insert$(0, path, { $timeout: startMs }), startMs, 'setting sys.path');
      session.api = await session.race(py.python('llmed.api'), startMs, 'importing llmed.api');
      await session.call('ignore_interrupts', [], { timeoutMs: startMs });
      await session.call('exit_with_parent', [], { timeoutMs: startMs });
      if (opts.importPaths?.length) await session.addImportPaths(opts.importPaths);
    } catch (e) {
      session.close();
      throw e;
    }
    return session;
  }

  /** Process id of the Python child. */
  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get isOpen(): boolean {
    return !this.closed && this.deathError === null;
  }

  /** Await `promise`, but fail at once if Python dies, and after `timeoutMs` if it hangs. */
  private async race<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
    if (this.deathError) throw this.deathError;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new LlmedError('bridge', `${what}: Python did not answer within ${Math.round(timeoutMs / 1000)} s`, { hint: 'the Python process may be stuck; look above for its output' })), timeoutMs);
    });
    try {
      return await Promise.race([promise, this.exited, timeout]);
    } catch (e) {
      if (e instanceof LlmedError) throw e;
      throw new LlmedError('bridge', `${what} failed: ${describePythoniaError(e)}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Call `llmed.api.<name>` and return its result as it came (`ok` true or false). */
  async callRaw(name: string, args: unknown[] | Record<string, unknown> = [], opts: CallOptions = {}): Promise<PyResult | ({ ok: false } & PythonFailure)> {
    if (this.closed) throw new LlmedError('bridge', `cannot call ${name}: the Python session is closed`);
    const timeoutMs = opts.timeoutMs ?? 30_000;
    // pythonia: a trailing `$` takes keyword arguments; `$timeout` replaces its 100 s default per call.
    // Infinity: pythonia sets no timer of its own (`race` times the call and clears its timer), so a call
    // left unanswered by a killed Python (a cancelled export) cannot keep Node alive for the timeout.
    const text = await this.race<string>(this.api.invoke$(name, JSON.stringify(args), { $timeout: Infinity }), timeoutMs, `Python call ${name}`);
    try {
      return JSON.parse(text);
    } catch {
      throw new LlmedError('bridge', `Python call ${name} returned something that is not JSON: ${String(text).slice(0, 200)}`);
    }
  }

  /** Call `llmed.api.<name>`; an `ok: false` result becomes a PythonBridgeError. */
  async call<T extends object = Record<string, unknown>>(name: string, args: unknown[] | Record<string, unknown> = [], opts: CallOptions = {}): Promise<T> {
    const result = await this.callRaw(name, args, opts);
    if (!result.ok) throw new PythonBridgeError(result as PythonFailure, `Python call ${name}`);
    return result as unknown as T;
  }

  addImportPaths(paths: string[]): Promise<{ added: string[] }> {
    return this.call('add_import_paths', [paths.map((p) => resolve(p))]);
  }

  checkEnvironment(): Promise<EnvironmentInfo> {
    return this.call('check_environment', [], { timeoutMs: 120_000 });
  }

  startTraining(runDir: string, specPath: string, configPath: string, preparedDir: string, options: Record<string, unknown>): Promise<StartTrainingResult> {
    return this.call('start_training', [runDir, specPath, configPath, preparedDir, JSON.stringify(options)]);
  }

  /** Progress of the current run (`ok: false` when none was started). */
  status(opts: CallOptions = {}): Promise<TrainStatus> {
    return this.call('status', [], { timeoutMs: opts.timeoutMs ?? 15_000 });
  }

  stop(): Promise<{ stopping: boolean }> {
    return this.call('stop', [], { timeoutMs: 15_000 });
  }

  /** The running training uses `threads` intra-op threads from its next step on. */
  setThreads(threads: number): Promise<{ threads: number }> {
    return this.call('set_threads', [threads], { timeoutMs: 15_000 });
  }

  /** Wait up to `timeoutS` seconds in Python for the run to end. */
  wait(timeoutS: number): Promise<TrainStatus> {
    return this.call('wait', [timeoutS], { timeoutMs: timeoutS * 1000 + 15_000 });
  }

  /** Build the spec's model (its code from `plugins`, the registered plugins by id) and count its parameters. */
  describeModel(specPath: string, workspaceRoot: string | null, plugins: Record<string, PythonEntry>): Promise<DescribeModelResult> {
    return this.call('describe_model', [specPath, workspaceRoot, plugins], { timeoutMs: 300_000 });
  }

  /**
   * ONNX export of a run (llmed.export): writes <run>/export (or `outDir`) and returns the manifest. The
   * model is built with `plugins` (the registered plugins by id), never with paths from the run folder.
   */
  exportModel(runDir: string, opts: { tag?: 'best' | 'last'; outDir?: string; workspaceRoot?: string; threads?: number; timeoutMs?: number; plugins: Record<string, PythonEntry>; prompts?: Record<string, string> }): Promise<{ exportDir: string; manifest: Record<string, any> }> {
    return this.call('export_model', { run_dir: runDir, tag: opts.tag ?? 'best', out_dir: opts.outDir ?? null, workspace_root: opts.workspaceRoot ?? null, threads: opts.threads ?? null, plugins: opts.plugins, prompts: opts.prompts ?? null }, { timeoutMs: opts.timeoutMs ?? 3_600_000 });
  }

  /** End the Python process (always call it: Node does not exit while the child lives). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (activeSession === this) activeSession = null;
    const alive = this.proc.exitCode === null && this.proc.signalCode === null;
    const gone = alive ? new Promise<void>((r) => this.proc.once('exit', () => r())) : Promise.resolve();
    try {
      this.py.python.exit();
    } catch {
      // already gone
    }
    // Let the child go before a later session starts a new one; do not hang on a stuck child (and do
    // not leave a timer behind that would keep Node alive).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([gone, new Promise<void>((r) => { timer = setTimeout(r, 3000); })]);
    clearTimeout(timer);
  }
}
