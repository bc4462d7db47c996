/**
 * Native registration and evaluation against a real export: a tiny LLaMA-Reg (tiny LLaMA checkpoint
 * built by transformers) trained for two steps and exported by the real exporter (tests/tiny_export.py).
 *
 * - onnxruntime-node + the TypeScript warp give torch's field (< 1e-3 voxels) and torch's Dice (4 decimals);
 * - `llmed register` on NIfTI files runs with Python hidden (no PYTHON_BIN, no venv on PATH) and writes
 *   the viewer's layout, a DISPVECT field in mm and metrics.json, saying how it resampled the inputs;
 * - `evaluateExport` writes the table, the box plot, pictures and viewer folders;
 * - bad input: a corrupted or truncated model, a manifest that does not match the model, label metrics
 *   without labels, a field of the wrong shape — each one error, nothing written.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLlmedError, loadRegistry, loadWorkspace } from '@llmed/core';
import { multiplyAffine, readNifti, readPreparedVolume, resampleToSpacing, smoothRandomField, warpNearest, writeDisplacementField, writeNifti, writePreparedVolume, type Volume } from '@llmed/imaging';
import { dice } from '@llmed/plugin-dice';
import { decodePng, evaluateExport, FieldPredictor, openExport, registerPair, sha256OfFile, type FieldSource, type MetricPlugin } from '../src/index.ts';

const WORKSPACE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const VENV_PYTHON = join(WORKSPACE, '.venv', 'bin', 'python');
const CLI = join(WORKSPACE, 'packages', 'cli', 'bin', 'llmed.mjs');
const haveVenv = existsSync(VENV_PYTHON);
if (!haveVenv) console.warn(`[runtime tests] skipped: no Python environment at ${VENV_PYTHON} to build the tiny export (run npm run setup)`);

let tmp: string;
let exportDir: string;
let preparedDir: string;
let reference: { pair: { moving: string; fixed: string; movingLabels: string; fixedLabels: string }; dice: number; fieldFile: string };
let metrics: MetricPlugin[];

/** A blob image and its two-label map on a grid with the given affine. */
function blob(dims: [number, number, number], affine: number[], centre: [number, number, number], radius: number): { image: Volume<Float32Array>; labels: Volume<Int32Array> } {
  const n = dims[0] * dims[1] * dims[2];
  const image = new Float32Array(n);
  const labels = new Int32Array(n);
  for (let k = 0, o = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++, o++) {
    const r2 = ((i - centre[0]) ** 2 + (j - centre[1]) ** 2 + (k - centre[2]) ** 2) / radius ** 2;
    image[o] = Math.exp(-r2);
    labels[o] = r2 < 0.5 ? 1 : r2 < 1.5 ? 2 : 0;
  }
  const spacing = [0, 1, 2].map((c) => Math.hypot(affine[c], affine[4 + c], affine[8 + c])) as [number, number, number];
  return {
    image: { data: image, dims, components: 1, spacing, affine, datatype: 'float32' },
    labels: { data: labels, dims, components: 1, spacing, affine, datatype: 'int32' },
  };
}

function runCli(args: string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: tmp, env, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The environment with no way to reach the venv's Python. */
function envWithoutPython(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHON_BIN: join(tmp, 'no-python-here', 'python') };
  env.PATH = (env.PATH ?? '').split(':').filter((p) => !p.includes('.venv')).join(':');
  delete env.VIRTUAL_ENV;
  return env;
}

describe.skipIf(!haveVenv)('native registration from an exported model', () => {
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'llmed-runtime-'));
    const built = spawnSync(VENV_PYTHON, ['-m', 'tests.tiny_export', join(tmp, 'tiny')], { cwd: join(WORKSPACE, 'bridge', 'python'), encoding: 'utf8', timeout: 300_000 });
    if (built.status !== 0) throw new Error(`building the tiny export failed:\n${built.stderr}`);
    const info = JSON.parse(built.stdout.trim().split('\n').at(-1)!) as { export: string; prepared: string };
    exportDir = info.export;
    preparedDir = info.prepared;
    reference = JSON.parse(readFileSync(join(tmp, 'tiny', 'reference.json'), 'utf8'));
    const registry = loadRegistry(loadWorkspace(WORKSPACE));
    metrics = [];
    return registry.then((reg) => {
      for (const id of ['dice', 'hd95', 'jacobian-nonpositive', 'sdlogj', 'endpoint-error']) {
        metrics.push({ id, runtime: reg.get(id, 'Metric').runtime as MetricPlugin['runtime'] });
      }
    });
  }, 300_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('onnxruntime-node and the TypeScript warp reproduce torch on a prepared pair', async () => {
    const predictor = await FieldPredictor.load(await openExport(exportDir), { threads: 1 });
    try {
      const p = reference.pair;
      const moving = (await readPreparedVolume(preparedDir, p.moving)).volume;
      const fixed = (await readPreparedVolume(preparedDir, p.fixed)).volume;
      const { field } = await predictor.predict(moving.data as Float32Array, fixed.data as Float32Array);
      const buf = readFileSync(join(tmp, 'tiny', reference.fieldFile));
      const torchField = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
      expect(field.length).toBe(torchField.length);
      let maxDiff = 0;
      for (let q = 0; q < field.length; q++) maxDiff = Math.max(maxDiff, Math.abs(field[q] - torchField[q]));
      expect(maxDiff).toBeLessThan(1e-3);
      const movingLabels = (await readPreparedVolume(preparedDir, p.movingLabels)).volume.data as Int32Array;
      const fixedLabels = (await readPreparedVolume(preparedDir, p.fixedLabels)).volume.data as Int32Array;
      const warped = warpNearest(movingLabels, fixed.dims, field, fixed.dims);
      expect(dice(fixedLabels, warped, [1, 2]).mean.toFixed(4)).toBe(reference.dice.toFixed(4));
    } finally {
      await predictor.close();
    }
  });

  it('llmed register runs without Python, resamples what differs and writes the viewer layout', async () => {
    const inputs = join(tmp, 'inputs');
    mkdirSync(inputs, { recursive: true });
    // fixed: RAS 16³ at 1 mm; moving: LPS, 20×18×16 at 0.8 mm — both must be brought to the model's grid.
    const fixed = blob([16, 16, 16], [1, 0, 0, -8, 0, 1, 0, -8, 0, 0, 1, -8, 0, 0, 0, 1], [8, 8, 8], 4);
    const moving = blob([20, 18, 16], [-0.8, 0, 0, 8, 0, -0.8, 0, 7, 0, 0, 1, -8, 0, 0, 0, 1], [9, 9, 7], 5);
    await writeNifti(join(inputs, 'fixed.nii.gz'), fixed.image);
    await writeNifti(join(inputs, 'fixed_seg.nii.gz'), fixed.labels);
    await writeNifti(join(inputs, 'moving.nii.gz'), moving.image);
    await writeNifti(join(inputs, 'moving_seg.nii.gz'), moving.labels);
    const out = join(tmp, 'registered');
    const r = runCli(['register', '--moving', join(inputs, 'moving.nii.gz'), '--fixed', join(inputs, 'fixed.nii.gz'),
      '--moving-labels', join(inputs, 'moving_seg.nii.gz'), '--fixed-labels', join(inputs, 'fixed_seg.nii.gz'),
      '--model', exportDir, '--out', out, '--threads', '1'], envWithoutPython());
    expect(r.stderr + r.stdout).not.toMatch(/error\[/);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/moving LPS 20×18×16 at 0\.8×0\.8×1 mm → reoriented to RAS, resampled/);
    expect(readdirSync(out).sort()).toEqual(['field.nii.gz', 'fixed.nii.gz', 'fixed_labels.nii.gz', 'jacobian.nii.gz', 'metrics.json', 'moving.nii.gz', 'moving_labels.nii.gz', 'warped.nii.gz', 'warped_labels.nii.gz']);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const report = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(report.metrics.dice.value).toBeGreaterThan(0);
    expect(report.metrics.dice.value).toBeLessThanOrEqual(1);
    expect(Number.isFinite(report.metrics.hd95.value)).toBe(true);
    expect(report.metrics['jacobian-nonpositive'].value).toBeGreaterThanOrEqual(0);
    expect(report.initial.dice.value).toBeGreaterThan(0);
    expect(report.grid.dims).toEqual([16, 16, 16]);
    const field = await readNifti(join(out, 'field.nii.gz'));
    expect(field.components).toBe(3);
    expect(field.header.intentCode).toBe(1006);
    expect(field.dims).toEqual([16, 16, 16]);
    const warped = await readNifti(join(out, 'warped.nii.gz'));
    expect(warped.dims).toEqual([16, 16, 16]);
    // The saved field applied again (--field) warps to the same image.
    const again = await registerPair({ moving: join(inputs, 'moving.nii.gz'), fixed: join(inputs, 'fixed.nii.gz'), model: exportDir, out: join(tmp, 'reapplied'), metrics, field: join(out, 'field.nii.gz') });
    const warped2 = await readNifti(join(again.out, 'warped.nii.gz'));
    let maxDiff = 0;
    for (let q = 0; q < warped.data.length; q++) maxDiff = Math.max(maxDiff, Math.abs(warped.data[q] - warped2.data[q]));
    expect(maxDiff).toBeLessThan(1e-4);
  });

  it('relates moving and fixed through their affines: before-Dice equals a nibabel/scipy world-space resampling', async () => {
    const inputs = join(tmp, 'world');
    mkdirSync(inputs, { recursive: true });
    // fixed: RAS 18×16×14 at 1.1 mm; moving: LPS, 26×24×21 at 0.77 mm, another origin — the same world
    // blob lies at other voxel positions and the boxes differ, so box-to-box and world space disagree.
    const fixedAffine = [1.1, 0, 0, -9.3, 0, 1.1, 0, -8.1, 0, 0, 1.1, -7.2, 0, 0, 0, 1];
    const movingAffine = [-0.77, 0, 0, 11.13, 0, -0.77, 0, 9.71, 0, 0, 0.77, -6.37, 0, 0, 0, 1];
    const worldBlob = (affine: number[], dims: [number, number, number], centreMm: number[], radiusMm: number) => {
      const inv = (i: number, j: number, k: number) => [affine[0] * i + affine[1] * j + affine[2] * k + affine[3], affine[4] * i + affine[5] * j + affine[6] * k + affine[7], affine[8] * i + affine[9] * j + affine[10] * k + affine[11]];
      const n = dims[0] * dims[1] * dims[2];
      const image = new Float32Array(n), labels = new Int32Array(n);
      for (let k = 0, o = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++, o++) {
        const p = inv(i, j, k);
        const r2 = ((p[0] - centreMm[0]) ** 2 + (p[1] - centreMm[1]) ** 2 + ((p[2] - centreMm[2]) * 1.3) ** 2) / radiusMm ** 2;
        image[o] = Math.exp(-r2);
        labels[o] = r2 < 0.45 ? 3 : r2 < 1.4 ? 7 : 0;
      }
      const spacing = [0, 1, 2].map((c) => Math.hypot(affine[c], affine[4 + c], affine[8 + c])) as [number, number, number];
      return { image: { data: image, dims, components: 1, spacing, affine, datatype: 'float32' } as Volume, labels: { data: labels, dims, components: 1, spacing, affine, datatype: 'int32' } as Volume };
    };
    const fixed = worldBlob(fixedAffine, [18, 16, 14], [0.4, 0.2, -0.3], 5.2);
    const moving = worldBlob(movingAffine, [26, 24, 21], [1.9, -0.8, 0.6], 4.6);
    const files = { fixed: join(inputs, 'f.nii.gz'), fixedSeg: join(inputs, 'f_seg.nii.gz'), moving: join(inputs, 'm.nii.gz'), movingSeg: join(inputs, 'm_seg.nii.gz') };
    await writeNifti(files.fixed, fixed.image);
    await writeNifti(files.fixedSeg, fixed.labels);
    await writeNifti(files.moving, moving.image);
    await writeNifti(files.movingSeg, moving.labels);
    const args = { moving: files.moving, fixed: files.fixed, movingLabels: files.movingSeg, fixedLabels: files.fixedSeg, model: exportDir, metrics };
    const world = await registerPair({ ...args, out: join(inputs, 'out-world') });

    const script = [
      'import sys, json, nibabel as nib, numpy as np',
      'from scipy import ndimage',
      'f, m = nib.load(sys.argv[1]), nib.load(sys.argv[2])',
      'fl, ml = np.asarray(f.dataobj).astype(np.int32), np.asarray(m.dataobj).astype(np.int32)',
      'M = np.linalg.inv(m.affine) @ f.affine',
      'w = ndimage.affine_transform(ml, M, output_shape=fl.shape, order=0, mode="constant", cval=0)',
      'd = {str(l): 2 * float(((fl == l) & (w == l)).sum()) / float((fl == l).sum() + (w == l).sum()) for l in (3, 7)}',
      'print(json.dumps({"perLabel": d, "mean": float(np.mean(list(d.values())))}))',
    ].join('\n');
    const py = spawnSync(VENV_PYTHON, ['-c', script, files.fixedSeg, files.movingSeg], { encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    const reference = JSON.parse(py.stdout.trim()) as { perLabel: Record<string, number>; mean: number };
    expect(world.report.geometry).toBe('world');
    expect(world.report.labels?.scored).toEqual([3, 7]);
    expect(world.report.initial.dice.perLabel).toEqual(reference.perLabel);
    expect(world.report.initial.dice.value).toBeCloseTo(reference.mean, 12);
    expect(world.report.notes.join('\n')).toMatch(/resampled into the fixed scan's world frame through both affines/);
    // outputs lie on the fixed grid with the fixed affine
    const warpedLabels = await readNifti(join(world.out, 'warped_labels.nii.gz'));
    expect(warpedLabels.dims).toEqual([18, 16, 14]);
    warpedLabels.affine.forEach((v, q) => expect(v).toBeCloseTo(fixedAffine[q], 4));
    expect(world.report.grid.dims).toEqual([18, 16, 14]);
    expect(world.report.modelGrid.dims).toEqual([16, 16, 16]);

    // A zero field leaves the moving labels where world space puts them: after = before.
    const zero = join(inputs, 'zero.nii.gz');
    await writeDisplacementField(zero, new Float32Array(3 * 18 * 16 * 14), fixed.image);
    const still = await registerPair({ ...args, out: join(inputs, 'out-zero'), field: zero });
    expect(still.report.metrics.dice.perLabel).toEqual(reference.perLabel);

    // box-to-box is an explicit choice, says so, and gives another (here: wrong) before-Dice
    const box = await registerPair({ ...args, out: join(inputs, 'out-box'), boxToBox: true });
    expect(box.report.geometry).toBe('box-to-box');
    expect(box.report.notes.join('\n')).toMatch(/warning: box-to-box/);
    expect(Math.abs(box.report.initial.dice.value - reference.mean)).toBeGreaterThan(0.05);
  });

  it('scores the user\'s own label ids, and says why a metric is missing', async () => {
    const inputs = join(tmp, 'inputs');
    const relabelled = join(tmp, 'labels-200');
    mkdirSync(relabelled, { recursive: true });
    // the model was trained on labels 1, 2; the user's maps call them 200 and 2, and the moving map lacks 2
    for (const [name, drop] of [['fixed_seg', false], ['moving_seg', true]] as const) {
      const v = await readNifti(join(inputs, `${name}.nii.gz`));
      const d = Int32Array.from(v.data, (x) => (x === 1 ? 200 : x === 2 && drop ? 0 : x));
      await writeNifti(join(relabelled, `${name}.nii.gz`), { ...v, data: d, datatype: 'int32' });
    }
    const base = { moving: join(inputs, 'moving.nii.gz'), fixed: join(inputs, 'fixed.nii.gz'), movingLabels: join(relabelled, 'moving_seg.nii.gz'), fixedLabels: join(relabelled, 'fixed_seg.nii.gz'), model: exportDir, metrics };
    const r = await registerPair({ ...base, out: join(tmp, 'own-labels') });
    expect(r.report.labels?.scored).toEqual([2, 200]);
    expect(r.report.labels?.absent.moving).toEqual([2]);
    expect(Number.isFinite(r.report.metrics.dice.perLabel!['200'])).toBe(true);
    expect(r.report.metrics.dice.perLabel!['2']).toBe(0);
    expect(r.report.metrics.hd95.perLabel!['2']).toBeNaN();
    expect(r.report.notes.join('\n')).toMatch(/label 2 absent from the moving labels: Dice 0 \(nothing to overlap\), distances n\/a/);
    expect(r.report.notes.join('\n')).toMatch(/the model was trained with labels 1, 2; the scores use your maps' own ids/);
    // only a label the moving map lacks: the metric is missing, and the report says why
    const only2 = await registerPair({ ...base, out: join(tmp, 'own-labels-2'), labels: { ids: [2], source: '--labels' } });
    expect(only2.report.metrics.dice.value).toBe(0);
    expect(only2.report.metrics.hd95.value).toBeNaN();
    expect(only2.report.missing.hd95).toMatch(/absent from the moving labels: 2/);
    const nowhere = await registerPair({ ...base, out: join(tmp, 'own-labels-99'), labels: { ids: [99], source: '--labels' } });
    expect(nowhere.report.metrics.dice.value).toBeNaN();
    expect(nowhere.report.missing.dice).toMatch(/no scored label \(99\) has a value: absent from the fixed labels: 99; absent from the moving labels: 99/);
    expect(nowhere.report.notes.join('\n')).toMatch(/label 99 absent from both label maps: no Dice or distance/);
    // the CLI: --labels as a list and as a lookup table
    const lut = join(relabelled, 'lut.txt');
    writeFileSync(lut, '# id name r g b a\n0 Unknown 0 0 0 0\n200 Gland 255 0 0 0\n');
    const cli = runCli(['register', '--moving', base.moving, '--fixed', base.fixed, '--moving-labels', base.movingLabels, '--fixed-labels', base.fixedLabels,
      '--model', exportDir, '--out', join(tmp, 'own-labels-cli'), '--labels', lut, '--threads', '1'], envWithoutPython());
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/scoring 1 label \(lookup table lut\.txt\): 200/);
    const rep = JSON.parse(readFileSync(join(tmp, 'own-labels-cli', 'metrics.json'), 'utf8'));
    expect(rep.labels.names).toEqual({ 200: 'Gland' });
    expect(Object.keys(rep.metrics.dice.perLabel)).toEqual(['200']);
    const bad = runCli(['register', '--moving', base.moving, '--fixed', base.fixed, '--model', exportDir, '--labels', '2,x'], envWithoutPython());
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/error\[usage\] --labels: '2,x' is neither a list of label ids/);
  });

  const colin = '/usr/share/mricron/templates/ch2bet.nii.gz';
  it.skipIf(!existsSync(colin))('--affine: elastix (WebAssembly, offline) recovers a known misalignment of real anatomy before the deformable step', async () => {
    const dir = join(tmp, 'affine');
    mkdirSync(dir, { recursive: true });
    // Colin27 at 2 mm with the AAL atlas; the moving copy's header is moved by a known rotation, scaling
    // and translation W — in world space the two are misaligned by exactly W.
    const image = resampleToSpacing(await readNifti(colin), [2, 2, 2], 'linear');
    const labels = resampleToSpacing(await readNifti('/usr/share/mricron/templates/aal.nii.gz'), [2, 2, 2], 'nearest');
    const a = 0.2, c = Math.cos(a), s = Math.sin(a);
    const W = multiplyAffine([c, -s, 0, 30, s, c, 0, -20, 0, 0, 1, 10, 0, 0, 0, 1], [1.08, 0, 0, 0, 0, 0.95, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    const files = { fixed: join(dir, 'f.nii.gz'), fixedSeg: join(dir, 'f_seg.nii.gz'), moving: join(dir, 'm.nii.gz'), movingSeg: join(dir, 'm_seg.nii.gz') };
    await writeNifti(files.fixed, image);
    await writeNifti(files.fixedSeg, { ...labels, datatype: 'int16' });
    await writeNifti(files.moving, { ...image, affine: multiplyAffine(W, image.affine) });
    await writeNifti(files.movingSeg, { ...labels, affine: multiplyAffine(W, labels.affine), datatype: 'int16' });
    const args = { moving: files.moving, fixed: files.fixed, movingLabels: files.movingSeg, fixedLabels: files.fixedSeg, model: exportDir, metrics: metrics.filter((m) => m.id === 'dice' || m.id === 'jacobian-nonpositive') };
    const plain = await registerPair({ ...args, out: join(dir, 'plain') });
    expect(plain.report.notes.join('\n')).toMatch(/warning: the pair looks unaligned: .* pass --affine/);
    const r = await registerPair({ ...args, out: join(dir, 'affine'), affine: true });
    // fixed → moving world transform = W, within a few tenths of a mm / per cent
    const T = r.report.affine!.fixedToMoving;
    for (let q = 0; q < 12; q++) expect(Math.abs(T[q] - W[q]), `element ${q}: ${T[q]} vs ${W[q]}`).toBeLessThan(q % 4 === 3 ? 1.0 : 0.02);
    const before = r.report.initial.dice.value, afterAffine = r.report.affine!.metrics.dice.value;
    expect(before).toBeLessThan(0.5);
    expect(afterAffine).toBeGreaterThan(0.85);
    expect(r.report.notes.join('\n')).toMatch(/affine pre-alignment with @itk-wasm\/elastix/);
    // the saved field holds the whole displacement: applied again without --affine it warps the same way
    const again = await registerPair({ ...args, out: join(dir, 'again'), field: join(r.out, 'field.nii.gz') });
    expect(again.report.metrics.dice.value).toBeCloseTo(r.report.metrics.dice.value, 3);
    await expect(registerPair({ ...args, out: join(dir, 'both'), field: join(r.out, 'field.nii.gz'), affine: true })).rejects.toThrow(/--affine and --field together/);
  }, 180_000);

  it('warns when more than 1 % of the voxels fold', async () => {
    const inputs = join(tmp, 'inputs');
    const fixed = await readNifti(join(inputs, 'fixed.nii.gz'));
    const n = fixed.dims[0] * fixed.dims[1] * fixed.dims[2];
    const folding = new Float32Array(3 * n);
    for (let q = 0; q < n; q++) folding[q] = -2 * (q % fixed.dims[0]); // x ↦ −x along i: det J = −1
    const file = join(tmp, 'folding.nii.gz');
    await writeDisplacementField(file, folding, fixed);
    const r = await registerPair({ moving: join(inputs, 'moving.nii.gz'), fixed: join(inputs, 'fixed.nii.gz'), model: exportDir, out: join(tmp, 'folding-out'), metrics, field: file });
    expect(r.report.metrics['jacobian-nonpositive'].value).toBeGreaterThan(1);
    expect(r.report.notes.join('\n')).toMatch(/warning: \d+\.\d+ % of the voxels fold \(det J ≤ 0\)/);
  });

  it('evaluate writes the table with an Initial row, a box plot, pictures and viewer folders', async () => {
    const predictor = await FieldPredictor.load(await openExport(exportDir), { threads: 1 });
    try {
      const { out, table } = await evaluateExport({ predictor, preparedDir, out: join(tmp, 'eval'), metrics, pictures: 1, method: 'tiny LLaMA-Reg' });
      expect(table.rows.map((r) => r.method)).toEqual(['Initial (no registration)', 'tiny LLaMA-Reg']);
      expect(table.pairs).toBe(2);
      expect(table.rows[1].metrics.dice.n).toBe(2);
      expect(table.rows[1].metrics.time.mean).toBeGreaterThan(0);
      expect(table.rows[0].metrics['jacobian-nonpositive'].mean).toBe(0);
      const md = readFileSync(join(out, 'table.md'), 'utf8');
      // no absolute path of this machine in the outputs: the export is named relative to the table's folder
      expect(md).not.toContain(tmp);
      expect(readFileSync(join(out, 'table.json'), 'utf8')).not.toContain(tmp);
      expect(table.export).toBe(relative(out, exportDir));
      expect(md).toMatch(/\| Initial \(no registration\) \| \d+\.\d ± \d+\.\d \|/);
      expect(md).toContain('Dice (%)');
      const png = decodePng(readFileSync(join(out, 'dice_per_label.png')));
      expect(png.width).toBeGreaterThan(100);
      expect(table.pictures).toHaveLength(4);
      for (const pic of table.pictures) expect(existsSync(join(out, pic))).toBe(true);
      const pairDirs = readdirSync(join(out, 'pairs'));
      expect(pairDirs).toHaveLength(1);
      expect(readdirSync(join(out, 'pairs', pairDirs[0]))).toContain('warped_labels.nii.gz');
    } finally {
      await predictor.close();
    }
  });

  it('evaluate scores fields from any source, and endpoint error where a pair carries its true field', async () => {
    // The prepared test pairs with a known true field each; a source that returns exactly that field.
    const withTruth = join(tmp, 'prepared-truth');
    cpSync(preparedDir, withTruth, { recursive: true });
    const pairsFile = join(withTruth, 'pairs.json');
    const pairs = JSON.parse(readFileSync(pairsFile, 'utf8'));
    const truths = new Map<string, Float32Array>();
    for (const [i, p] of (pairs.test as { moving: string; fixed: string; groundTruthField?: string }[]).entries()) {
      const fixed = (await readPreparedVolume(withTruth, p.fixed)).volume;
      const u = smoothRandomField(fixed.dims, { maxDisplacement: 1.5, smoothness: 4, seed: 40 + i });
      p.groundTruthField = `truth_${i}`;
      await writePreparedVolume(withTruth, p.groundTruthField, { ...fixed, data: u, components: 3 } as Volume);
      truths.set(`${p.moving}>${p.fixed}`, u);
    }
    writeFileSync(pairsFile, JSON.stringify(pairs));
    const exported = await openExport(exportDir);
    const source: FieldSource = {
      experiment: 'truth', shape: exported.manifest.prepared.shape, origin: { export: 'the true fields', sourceRun: '—', checkpoint: '—', step: 0 }, where: pairsFile,
      async field(pair) { return { field: truths.get(`${pair.moving}>${pair.fixed}`)!, seconds: 0.25 }; },
    };
    const { out, table } = await evaluateExport({ fields: source, preparedDir: withTruth, out: join(tmp, 'eval-truth'), metrics, pictures: 0, method: 'true field' });
    expect(table.rows[1].metrics['endpoint-error'].mean).toBe(0);
    expect(table.rows[0].metrics['endpoint-error'].mean).toBeGreaterThan(0.1);
    expect(table.rows[1].metrics.time.mean).toBeGreaterThanOrEqual(0.25);
    expect(table.export).toBe('the true fields');
    expect(readFileSync(join(out, 'table.md'), 'utf8')).toContain('EPE (mm)');
    // the prepared pairs without a true field skip the metric instead of failing
    const predictor = await FieldPredictor.load(exported, { threads: 1 });
    try {
      const plain = await evaluateExport({ predictor, preparedDir, out: join(tmp, 'eval-plain'), metrics, pictures: 0, method: 'tiny' });
      expect(plain.table.rows[1].metrics['endpoint-error']).toBeUndefined();
    } finally {
      await predictor.close();
    }
  });

  describe('bad input', () => {
    const copyExport = (name: string) => {
      const dir = join(tmp, name);
      cpSync(exportDir, dir, { recursive: true });
      return dir;
    };
    const expectError = async (p: Promise<unknown>, kind: string, text: RegExp) => {
      const err = await p.then(() => null, (e) => e);
      expect(isLlmedError(err), String(err)).toBe(true);
      expect(err.kind).toBe(kind);
      expect(err.format()).toMatch(text);
    };

    it('a corrupted or truncated model file', async () => {
      const corrupted = copyExport('corrupted');
      const model = readFileSync(join(corrupted, 'model.onnx'));
      model[Math.floor(model.length / 2)] ^= 0xff;
      writeFileSync(join(corrupted, 'model.onnx'), model);
      await expectError(openExport(corrupted), 'checkpoint', /model\.onnx: SHA-256 .* does not match manifest\.json/);

      const truncated = copyExport('truncated');
      truncateSync(join(truncated, 'model.onnx'), 1000);
      await expectError(openExport(truncated), 'checkpoint', /is 1000 bytes, manifest\.json says \d+: truncated/);

      // A truncated file whose manifest was "fixed up" to match still fails, in onnxruntime, with one clear error.
      const manifest = JSON.parse(readFileSync(join(truncated, 'manifest.json'), 'utf8'));
      manifest.model.bytes = 1000;
      manifest.model.sha256 = await sha256OfFile(join(truncated, 'model.onnx'));
      writeFileSync(join(truncated, 'manifest.json'), JSON.stringify(manifest));
      await expectError(openExport(truncated).then((e) => FieldPredictor.load(e)), 'checkpoint', /onnxruntime cannot load the model/);
    });

    it('a manifest that does not match the model', async () => {
      const dir = copyExport('mismatched');
      const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
      // Self-consistent, but for an 8³ network the graph does not have.
      m.input.shape = [8, 8, 8]; m.prepared.shape = [8, 8, 8]; m.data.preprocess.shape = [8, 8, 8];
      for (const t of m.model.inputs) t.shape = [1, 1, 8, 8, 8];
      m.model.outputs[0].shape = [1, 3, 8, 8, 8];
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
      await expectError(openExport(dir).then((e) => FieldPredictor.load(e)), 'checkpoint', /manifest does not match the model: moving is \[1, 1, 16, 16, 16\] in the graph, \[1, 1, 8, 8, 8\] in the manifest/);
      // and one that contradicts itself is refused before any session is made
      m.model.inputs[0].shape = [1, 1, 16, 16, 16];
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
      await expectError(openExport(dir), 'checkpoint', /model\.inputs\[0\]\.shape: is \[1, 1, 16, 16, 16\], the input grid \[8,8,8\] needs/);
    });

    it('label metrics asked for without labels, and half a label pair', async () => {
      const inputs = join(tmp, 'inputs');
      const out = join(tmp, 'no-labels');
      await expectError(registerPair({ moving: join(inputs, 'moving.nii.gz'), fixed: join(inputs, 'fixed.nii.gz'), model: exportDir, out, metrics, explicitMetrics: true }), 'usage', /metric 'dice' needs label maps, and none were given/);
      expect(existsSync(out)).toBe(false);
      await expectError(registerPair({ moving: join(inputs, 'moving.nii.gz'), fixed: join(inputs, 'fixed.nii.gz'), movingLabels: join(inputs, 'moving_seg.nii.gz'), model: exportDir, out, metrics }), 'usage', /--moving-labels was given without --fixed-labels/);
      // defaults skip them, and say so
      const r = await registerPair({ moving: join(inputs, 'moving.nii.gz'), fixed: join(inputs, 'fixed.nii.gz'), model: exportDir, out, metrics });
      expect(Object.keys(r.report.skipped).sort()).toEqual(['dice', 'endpoint-error', 'hd95']);
      expect(r.report.metrics['jacobian-nonpositive']).toBeDefined();
    });

    it('a field NIfTI of the wrong shape', async () => {
      const inputs = join(tmp, 'inputs');
      const wrong = join(tmp, 'wrong_field.nii.gz');
      const grid = blob([8, 8, 8], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], [4, 4, 4], 2).image;
      await writeDisplacementField(wrong, new Float32Array(3 * 512), grid);
      const out = join(tmp, 'wrong-field-out');
      await expectError(registerPair({ moving: join(inputs, 'moving.nii.gz'), fixed: join(inputs, 'fixed.nii.gz'), model: exportDir, out, metrics, field: wrong }), 'shape', /wrong_field\.nii\.gz: field grid 8×8×8 does not match the fixed image's grid 16×16×16/);
      expect(existsSync(out)).toBe(false);
      const scalar = join(tmp, 'scalar.nii.gz');
      copyFileSync(join(inputs, 'fixed.nii.gz'), scalar);
      await expectError(registerPair({ moving: join(inputs, 'moving.nii.gz'), fixed: join(inputs, 'fixed.nii.gz'), model: exportDir, out, metrics, field: scalar }), 'data', /not a displacement field: 1 component/);
    });

    it('a 4-D input says it has frames and how to pick one', async () => {
      const inputs = join(tmp, 'inputs');
      const file = join(tmp, 'series.nii.gz');
      await writeNifti(file, { data: new Float32Array(16 * 16 * 16 * 2), dims: [16, 16, 16], components: 2, spacing: [1, 1, 1], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], datatype: 'float32' });
      const err = await registerPair({ moving: file, fixed: join(inputs, 'fixed.nii.gz'), model: exportDir, out: join(tmp, 'series-out'), metrics }).then(() => null, (e) => e);
      expect(isLlmedError(err)).toBe(true);
      expect(err.format()).toMatch(/moving image has 2 (frames \(a 4-D series\)|components); a single 3-D volume is needed/);
      expect(err.format()).toMatch(/pick one (frame|component) first, e\.g\. with nibabel: .*slicer\[\.\.\., 0\]/);
    });

    it('the CLI prints one error line and exits non-zero for a missing export', () => {
      const r = runCli(['register', '--moving', 'a.nii.gz', '--fixed', 'b.nii.gz', '--model', join(tmp, 'nowhere')], envWithoutPython());
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split('\n')[0]).toMatch(/^error\[checkpoint\] .*nowhere: no such export folder or file$/);
      expect(r.stderr).not.toMatch(/at .*\.ts:\d+/);
    });
  });
});
