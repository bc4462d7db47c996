/**
 * Hostile and broken inputs against the real `llmed` command, in a tiny workspace generated here
 * (test/helpers/tiny-workspace.ts): one real run is trained and exported once, then copied and mutated
 * for each case. Every case ends in one typed error (never `error[internal]`), runs no code named by a
 * run folder, hangs on nothing, deletes no user folder and leaves nothing half-written:
 *
 * run folders as code (spec.json python roots, unknown plugins), output folders that are not llmed's,
 * experiment names derived as `..`, export manifests naming /dev/zero or files outside the folder or
 * absurd grids, cancellation of export and train, concurrent writers, non-finite configs and images,
 * crashes (resume beyond the run's iterations, nested JSON) and messages that must name the file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeVolume, writeDisplacementField, writeNifti } from '@llmed/imaging';
import { cliBin, llmed, tempDir, type CliResult } from '../helpers/workspace.ts';
import { makeTinyWorkspace, tinyConfig, TINY_SHAPE, type TinyWorkspace } from '../helpers/tiny-workspace.ts';

const tmp = tempDir('llmed-hostile-');
afterAll(() => tmp.cleanup());
let ws: TinyWorkspace;
let run: string; // a trained and exported run of `tiny`
const haveVenv = existsSync(join(dirname(cliBin), '..', '..', '..', '.venv', 'bin', 'python'));

const cli = (args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): CliResult => llmed(args, { cwd: opts.cwd ?? ws.root, timeoutMs: opts.timeoutMs ?? 180_000 });

/** One typed error line (not internal), naming `where`, and no stack trace. */
function expectTypedError(r: CliResult, kind: string, ...patterns: RegExp[]) {
  expect(r.status, r.stdout + r.stderr).not.toBe(0);
  expect(r.stderr).not.toMatch(/error\[internal\]/);
  expect(r.stderr).toMatch(new RegExp(`(^|\\n)error\\[${kind}\\] `));
  for (const p of patterns) expect(r.stderr).toMatch(p);
  expect(r.stderr).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)/);
}

/** A copy of the trained run, to mutate. */
function copyRun(name: string): string {
  const dir = join(ws.root, 'runs', 'copies', name);
  cpSync(run, dir, { recursive: true });
  return dir;
}

function editJson(file: string, edit: (v: any) => void): void {
  const v = JSON.parse(readFileSync(file, 'utf8'));
  edit(v);
  writeFileSync(file, JSON.stringify(v, null, 2));
}

/** A python folder whose module writes `marker` when imported (what a crafted run folder would point at). */
function hostileModule(folder: string, module: string, marker: string): string {
  mkdirSync(join(folder, module), { recursive: true });
  writeFileSync(join(folder, module, '__init__.py'), `open(${JSON.stringify(marker)}, 'w').write('imported')\ndef build(options, inputs):\n    raise SystemExit('ran')\n`);
  return folder;
}

/** Python processes whose parent is `pid`. */
function pythonChildren(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').filter(Boolean).map(Number).filter((p) => {
    try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('python'); } catch { return false; }
  });
}

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

/** Start the CLI in the background; resolves its exit once it ends. */
function start(args: string[]) {
  const child = spawn(process.execPath, [cliBin, ...args], { cwd: ws.root, env: { ...process.env, FORCE_COLOR: '0' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const waitFor = async (re: RegExp, ms = 120_000) => {
    const t0 = Date.now();
    while (!re.test(stderr + stdout)) {
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${re}: ${stderr}`);
      if (child.exitCode !== null) throw new Error(`exited before ${re}: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { child, exited, waitFor, output: () => ({ stdout, stderr }) };
}

describe.skipIf(!haveVenv)('hostile inputs to the llmed command', () => {
  beforeAll(async () => {
    ws = await makeTinyWorkspace(join(tmp.dir, 'ws'));
    const trained = cli(['train', 'tiny']);
    if (trained.status !== 0) throw new Error(`training the tiny run failed:\n${trained.stderr}`);
    run = join(ws.root, trained.stdout.match(/run folder: (.+)/)![1].trim());
    const exported = cli(['export', run]);
    if (exported.status !== 0) throw new Error(`exporting the tiny run failed:\n${exported.stderr}`);
  }, 600_000);

  describe('run folders are data, never code', () => {
    it('stores plugin ids and no python paths in a new run', () => {
      const spec = readFileSync(join(run, 'spec.json'), 'utf8');
      expect(spec).toContain('"id": "dual-pyramid"');
      expect(spec).not.toMatch(/"python"|"root"/);
    });

    it('export and resume of a run whose spec.json points python roots elsewhere import nothing from there', () => {
      const crafted = copyRun('evil-roots');
      const marker = join(tmp.dir, 'imported-by-export');
      const evil = hostileModule(join(tmp.dir, 'evil'), 'llmed_dual_pyramid', marker);
      editJson(join(crafted, 'spec.json'), (spec) => {
        for (const node of [spec.encoder, spec.tokens, ...spec.block, spec.stageAdapters, spec.decoder, ...spec.losses]) {
          node.python = { root: evil, module: 'llmed_dual_pyramid', factory: 'build' };
        }
      });
      rmSync(join(crafted, 'export'), { recursive: true, force: true });
      const exported = cli(['export', crafted]);
      expect(exported.status, exported.stderr).toBe(0); // built from the registered plugins
      const resumed = cli(['train', 'tiny', '--resume', crafted]);
      expect(resumed.status, resumed.stderr).toBe(0);
      expect(resumed.stdout).toMatch(/already had finished|nothing to do/);
      expect(existsSync(marker)).toBe(false);
    }, 300_000);

    it('a run naming an unknown plugin is refused before Python, naming the spec file and node', () => {
      const crafted = copyRun('unknown-plugin');
      editJson(join(crafted, 'spec.json'), (spec) => { spec.block[1].id = 'not-registered'; });
      for (const args of [['export', crafted], ['train', 'tiny', '--resume', crafted]]) {
        expectTypedError(cli(args), 'plugin', /spec\.json model\.block\[1\]/, /unknown plugin 'not-registered'/);
      }
    });

    it('a damaged checkpoint names its file', () => {
      const crafted = copyRun('damaged');
      rmSync(join(crafted, 'export'), { recursive: true, force: true });
      writeFileSync(join(crafted, 'checkpoints', 'best.safetensors'), 'not a safetensors file at all');
      expectTypedError(cli(['export', crafted]), 'checkpoint', /best\.safetensors/);
    }, 120_000);
  });

  describe('output folders', () => {
    it('export --out and evaluate --out refuse a folder that is not an llmed output of their kind', () => {
      writeFileSync(join(ws.root, 'configs', 'keep.txt'), 'mine');
      expectTypedError(cli(['export', run, '--out', '.']), 'usage', /is not an llmed export; refusing to replace it/);
      expectTypedError(cli(['evaluate', run, '--out', 'configs']), 'usage', /is not an llmed evaluate output; refusing to replace it/);
      expectTypedError(cli(['evaluate', run, '--out', join(run, 'export')]), 'usage', /not an llmed evaluate output/);
      expect(readFileSync(join(ws.root, 'configs', 'keep.txt'), 'utf8')).toBe('mine');
      expect(existsSync(join(ws.root, 'workspace.json'))).toBe(true);
    });

    it('a config in an ancestor folder does not become experiment `..`', () => {
      const outside = join(dirname(ws.root), 'config.json');
      const config = { ...tinyConfig(), data: { ...tinyConfig().data, root: join(ws.root, 'data', 'tiny') } };
      writeFileSync(join(ws.root, '.cache', 'keep.txt'), 'the LLM checkpoints live here');
      // The folder name `..` is not an experiment name: the config's own "name" is used, or refused.
      writeFileSync(outside, JSON.stringify({ ...config, name: '..' }));
      for (const args of [['data', 'prepare', '../config.json'], ['train', '../config.json']]) {
        expectTypedError(cli(args), 'config', /config\.json: experiment name "\.\." is not valid/);
      }
      writeFileSync(outside, JSON.stringify({ ...config, name: 'outside' }));
      const r = cli(['data', 'prepare', '../config.json']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/prepared: \.cache\/prepared\/outside/);
      expect(readFileSync(join(ws.root, '.cache', 'keep.txt'), 'utf8')).toBe('the LLM checkpoints live here');
      expect(readdirSync(join(ws.root, 'runs')).sort()).toEqual(['copies', 'tiny']);
    });
  });

  describe('exports that would hang or read outside their folder', () => {
    const register = (model: string) => cli(['register', '--model', model, '--moving', join(ws.dataDir, 's0.nii.gz'), '--fixed', join(ws.dataDir, 's1.nii.gz'), '--out', join(tmp.dir, 'registered')], { timeoutMs: 30_000 });
    const exportCopy = (name: string) => {
      const dir = join(tmp.dir, 'exports', name);
      cpSync(join(run, 'export'), dir, { recursive: true });
      return dir;
    };

    it('a model.onnx symlink to /dev/zero is refused at once', () => {
      const dir = exportCopy('dev-zero');
      unlinkSync(join(dir, 'model.onnx'));
      symlinkSync('/dev/zero', join(dir, 'model.onnx'));
      editJson(join(dir, 'manifest.json'), (m) => { m.model.bytes = 0; });
      const t0 = Date.now();
      const r = register(dir);
      expect(r.status, 'register hung on /dev/zero').not.toBe(-1);
      expect(Date.now() - t0).toBeLessThan(30_000);
      expectTypedError(r, 'checkpoint', /model\.onnx: is a symbolic link out of the export folder/);
    });

    it('externalData naming a file outside the folder, or a device, is refused', () => {
      const dir = exportCopy('outside');
      editJson(join(dir, 'manifest.json'), (m) => { m.model.externalData = { file: '../../../../etc/passwd', bytes: 10, sha256: '0'.repeat(64) }; });
      expectTypedError(register(dir), 'checkpoint', /model\.externalData\.file: must be a plain file name inside the export folder/);
      editJson(join(dir, 'manifest.json'), (m) => { m.model.externalData = { file: 'data.bin', bytes: 0, sha256: '0'.repeat(64) }; });
      symlinkSync('/dev/zero', join(dir, 'data.bin'));
      expectTypedError(register(dir), 'checkpoint', /data\.bin: is a symbolic link out of the export folder/);
    });

    it('a manifest with a consistent 2048³ grid is a typed error, not a crash', () => {
      const dir = exportCopy('huge-grid');
      editJson(join(dir, 'manifest.json'), (m) => {
        const g = [2048, 2048, 2048];
        m.input.shape = g; m.prepared.shape = g; m.data.preprocess.shape = g; m.warp.grid = g;
        for (const t of m.model.inputs) t.shape = [1, 1, ...g];
        m.model.outputs[0].shape = [1, 3, ...g];
      });
      expectTypedError(register(dir), 'checkpoint', /manifest\.json: input\.shape: 2048×2048×2048 is 8\.59e\+9 voxels/);
    });
  });

  describe('cancellation', () => {
    it('killing `llmed export` stops its Python child, removes the staging folder and installs nothing', async () => {
      const out = join(tmp.dir, 'cancelled-export');
      const p = start(['export', run, '--out', out]);
      await p.waitFor(/exporting to ONNX/);
      const children = pythonChildren(p.child.pid!);
      expect(children.length).toBe(1);
      const staged = readdirSync(tmp.dir).filter((f) => f.startsWith('cancelled-export.tmp-'));
      expect(staged.length).toBe(1);
      p.child.kill('SIGTERM');
      const { code } = await p.exited;
      expect(code).toBe(143);
      expect(p.output().stderr).toMatch(/error\[cancelled\] .*export cancelled by SIGTERM/);
      await new Promise((r) => setTimeout(r, 3000)); // the export would have finished and been renamed by now
      expect(children.filter(alive)).toEqual([]);
      expect(readdirSync(tmp.dir).filter((f) => f.startsWith('cancelled-export'))).toEqual([]);
    }, 180_000);

    it('a Ctrl-C of `llmed train` saves last and exits 130, not 0', async () => {
      const p = start(['train', 'tiny', '--iterations', '500']);
      await p.waitFor(/training tiny .* [1-9]\d*\/500/);
      p.child.kill('SIGINT');
      const { code } = await p.exited;
      const { stdout, stderr } = p.output();
      expect(code, stderr).toBe(130);
      expect(stdout).toMatch(/training stopped at step \d+\/500/);
      expectTypedError({ status: code ?? -1, stdout, stderr }, 'cancelled', /training was interrupted at step \d+\/500; checkpoints\/last is saved/, /--resume/);
      const runDir = join(ws.root, stderr.match(/error\[cancelled\] (\S+):/)![1]);
      expect(existsSync(join(runDir, 'checkpoints', 'last.json'))).toBe(true);
    }, 180_000);
  });

  describe('concurrent writers', () => {
    it('a second writer of the prepared folder gets "another llmed is writing", a stale lock is taken over', async () => {
      const lock = join(ws.root, '.cache', 'prepared', 'tiny.lock');
      const holder = spawn('sleep', ['60']);
      const holderGone = new Promise((r) => holder.on('exit', r));
      try {
        writeFileSync(lock, JSON.stringify({ pid: holder.pid, command: 'data prepare tiny' }));
        const r = cli(['data', 'prepare', 'tiny', '--force']);
        expect(r.status).toBe(75);
        expectTypedError(r, 'busy', /another llmed is writing .*\.cache\/prepared\/tiny \(pid \d+: llmed data prepare tiny\)/);
      } finally {
        holder.kill('SIGKILL');
      }
      await holderGone; // reaped: its pid is free, the lock it "held" is stale
      const again = cli(['data', 'prepare', 'tiny', '--force']);
      expect(again.status, again.stderr).toBe(0);
      expect(existsSync(lock)).toBe(false);
    });

    it('two prepares of one experiment at once: one prepares, the other is told, nothing breaks', async () => {
      const a = start(['data', 'prepare', 'tiny', '--force']);
      const b = start(['data', 'prepare', 'tiny', '--force']);
      const [ea, eb] = await Promise.all([a.exited, b.exited]);
      for (const [e, p] of [[ea, a], [eb, b]] as const) {
        const { stderr } = p.output();
        expect(stderr).not.toMatch(/ENOTEMPTY|ENOENT|error\[internal\]/);
        if (e.code !== 0) expect(stderr).toMatch(/error\[busy\] .*another llmed is writing/);
      }
      expect([ea.code, eb.code]).toContain(0);
      expect(existsSync(join(ws.root, '.cache', 'prepared', 'tiny', 'pairs.json'))).toBe(true);
    }, 120_000);
  });

  describe('input that must not be accepted silently', () => {
    it('train.lr 1e999 fails config check, naming train.lr, and train creates no run', () => {
      const dir = join(ws.root, 'configs', 'inf-lr');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'config.json'), JSON.stringify(tinyConfig()).replace('"lr":0.001', '"lr":1e999'));
      expectTypedError(cli(['config', 'check', join(dir, 'config.json')]), 'config', /inf-lr\/config\.json train\.lr: is not a finite number/);
      expectTypedError(cli(['train', join(dir, 'config.json')]), 'config', /train\.lr/);
      expect(existsSync(join(ws.root, 'runs', 'inf-lr'))).toBe(false);
    });

    it('an all-NaN moving image and a NaN --field are refused, not "registered"', async () => {
      const n = TINY_SHAPE[0] * TINY_SHAPE[1] * TINY_SHAPE[2];
      const nanImage = join(tmp.dir, 'nan.nii.gz');
      await writeNifti(nanImage, makeVolume(new Float32Array(n).fill(NaN), TINY_SHAPE, { datatype: 'float32' }));
      const base = ['register', '--model', join(run, 'export'), '--fixed', join(ws.dataDir, 's1.nii.gz')];
      expectTypedError(cli([...base, '--moving', nanImage, '--out', join(tmp.dir, 'r-nan')]), 'data', /nan\.nii\.gz.*every voxel is NaN or infinite/);
      const field = join(tmp.dir, 'nan-field.nii.gz');
      await writeDisplacementField(field, new Float32Array(3 * n).fill(NaN), makeVolume(new Float32Array(n), TINY_SHAPE));
      expectTypedError(cli([...base, '--moving', join(ws.dataDir, 's0.nii.gz'), '--field', field, '--out', join(tmp.dir, 'r-field')]), 'data', /nan-field\.nii\.gz: \d+ of the field's \d+ values are NaN or infinite/);
      expect(existsSync(join(tmp.dir, 'r-nan'))).toBe(false);
      expect(existsSync(join(tmp.dir, 'r-field'))).toBe(false);
    });

    it('a 1-D image in register is a data error naming the file, not an internal function', async () => {
      const line = join(tmp.dir, 'line.nii.gz');
      await writeNifti(line, makeVolume(Float32Array.from({ length: 64 }, (_, i) => i), [64, 1, 1], { datatype: 'float32' }));
      const r = cli(['register', '--model', join(run, 'export'), '--moving', line, '--fixed', join(ws.dataDir, 's1.nii.gz'), '--out', join(tmp.dir, 'r-line')]);
      expectTypedError(r, 'data', /line\.nii\.gz.*64×1×1 grid: axis 1 has a single voxel/);
    });
  });

  describe('crashes that must be typed errors', () => {
    it('resuming a run whose checkpoint is beyond its iterations, or past a shorter experiment config', () => {
      const crafted = copyRun('beyond');
      editJson(join(crafted, 'config.json'), (c) => { c.train.iterations = 1; });
      expectTypedError(cli(['train', 'tiny', '--resume', crafted]), 'checkpoint', /last\.json/, /at step 2, beyond the 1 iterations/);
      // The experiment's own config now asks for fewer steps than the run has: the run's config decides.
      const shorter = join(ws.root, 'configs', 'tiny-short');
      mkdirSync(shorter, { recursive: true });
      writeFileSync(join(shorter, 'config.json'), JSON.stringify(tinyConfig(1)));
      const r = cli(['train', join(shorter, 'config.json'), '--resume', copyRun('finished')]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/error\[internal\]/);
    }, 180_000);

    it('deeply nested JSON in a config is a config error naming the file', () => {
      const dir = join(ws.root, 'configs', 'deep');
      mkdirSync(dir, { recursive: true });
      const cfg = JSON.stringify(tinyConfig());
      writeFileSync(join(dir, 'config.json'), cfg.replace('"description":', `"nested":${'['.repeat(20_000)}${']'.repeat(20_000)},"description":`));
      expectTypedError(cli(['config', 'check', join(dir, 'config.json')]), 'config', /deep\/config\.json nested.*: nests more than 64 levels deep/);
    });
  });

  describe('messages that name the file', () => {
    it('--resume of a missing folder refuses before creating or preparing anything', () => {
      rmSync(join(ws.root, '.cache', 'prepared', 'tiny'), { recursive: true, force: true });
      const missing = join(ws.root, 'runs', 'tiny', 'no-such-run');
      expectTypedError(cli(['train', 'tiny', '--resume', missing]), 'checkpoint', /no-such-run: cannot resume: not a run folder/);
      expect(existsSync(missing)).toBe(false);
      expect(existsSync(join(ws.root, '.cache', 'prepared', 'tiny'))).toBe(false);
    });

    it('--iterations with --resume is refused with a message instead of being ignored', () => {
      expectTypedError(cli(['train', 'tiny', '--resume', run, '--iterations', '9']), 'usage', /--iterations cannot be combined with --resume/);
    });

    it('a plugin-option error names the config file as well as the config path', () => {
      const dir = join(ws.root, 'configs', 'bad-option');
      mkdirSync(dir, { recursive: true });
      const cfg = tinyConfig();
      cfg.model.encoder.with.chanels = 3;
      writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
      expectTypedError(cli(['config', 'check', join(dir, 'config.json')]), 'config', /bad-option\/config\.json model\.encoder\.with\.chanels: is not a known setting/);
    });
  });
});
