/**
 * The NiiVue viewer end to end: `serveViewer` on real output folders, the page driven in Debian's
 * headless Chromium, and a screenshot checked pixel by pixel (anatomy, label colours, det J colours),
 * plus the server's refusals (path traversal, missing volumes).
 *
 * The same for a report evaluation folder (samples.json + samples/<id>.nii.gz): the API lists its samples and
 * the page shows each sample's CT in NiiVue beside its prompt, reference and generated text; `llmed view`
 * is run as a user would on both kinds of folder.
 *
 * Browser tests need /usr/bin/chromium (`npm run setup` installs Debian's chromium) and the mricron
 * templates; without them they are skipped with a message (LLMED_CHROMIUM points at another Chromium
 * binary). WebGL2 runs on SwiftShader (no GPU here).
 * Screenshots land in .cache/test-results/viewer/ for a person to look at.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlmedError } from '@llmed/core';
import { readNifti, writeNifti } from '@llmed/imaging';
import { scanViewerFolder, serveViewer, type ViewerServer } from '@llmed/viewer';
import { cliBin, hasMricron, mricron, repoRoot, tempDir } from '../helpers/workspace.ts';
import { writeBrainOutput, writeTinyOutput } from './output-folder.ts';
import { reportSamples, writeReportEval } from './report-folder.ts';

const chromiumPath = process.env.LLMED_CHROMIUM ?? '/usr/bin/chromium';
const hasChromium = existsSync(chromiumPath);
if (!hasChromium) console.warn(`[llmed tests] ${chromiumPath} is absent (npm run setup, or apt-get install chromium): the viewer's browser tests are SKIPPED`);

/**
 * Chromium flags for a closed, GPU-less machine: no sandbox (root in CI), no background networking
 * (its connections are refused here and only add noise), and WebGL2 on SwiftShader through ANGLE.
 * Playwright adds --headless and a fresh temporary --user-data-dir itself.
 */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
];

const shots = join(repoRoot, '.cache', 'test-results', 'viewer');
const tmp = tempDir('llmed-viewer-');
afterAll(() => tmp.cleanup());

/** GET/HEAD/POST with the path sent exactly as given (fetch would normalise `..` away). */
function rawRequest(url: string, path: string, method = 'GET'): Promise<{ status: number; type: string; body: Buffer }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function expectDataError(fn: () => unknown, pattern: RegExp): LlmedError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LlmedError);
    const err = e as LlmedError;
    expect(err.kind).toBe('data');
    expect(err.format()).toMatch(pattern);
    return err;
  }
  throw new Error('expected an LlmedError');
}

describe('serveViewer: folders', () => {
  it('refuses a missing folder, naming it', async () => {
    const missing = join(tmp.dir, 'no-such-run');
    expectDataError(() => scanViewerFolder(missing), /^error\[data\] .*no-such-run: folder not found/);
    await expect(serveViewer({ folder: missing })).rejects.toMatchObject({ kind: 'data', where: missing });
  });

  it('refuses a folder without the volumes, naming the folder and what is missing', async () => {
    const dir = join(tmp.dir, 'half');
    await writeTinyOutput(dir);
    rmSync(join(dir, 'moving.nii.gz'));
    rmSync(join(dir, 'warped.nii.gz'));
    const err = expectDataError(() => scanViewerFolder(dir), /half: nothing to view: missing moving\.nii\.gz, warped\.nii\.gz/);
    expect(err.hint).toMatch(/llmed register/);
    await expect(serveViewer({ folder: dir })).rejects.toThrow(/missing moving\.nii\.gz, warped\.nii\.gz/);
  });

  it('refuses a run folder whose eval/pairs are incomplete, naming the first gap', async () => {
    const dir = join(tmp.dir, 'run-incomplete');
    await writeTinyOutput(join(dir, 'eval', 'pairs', 'p1'));
    rmSync(join(dir, 'eval', 'pairs', 'p1', 'warped.nii.gz'));
    expectDataError(() => scanViewerFolder(dir), /no pair under eval\/pairs\/ is complete \(p1 lacks warped\.nii\.gz\)/);
  });

  it('finds the pairs of a run folder in natural order, with their optional volumes and metrics', async () => {
    const dir = join(tmp.dir, 'run');
    for (const p of ['pair_10', 'pair_2', 'pair_1']) await writeTinyOutput(join(dir, 'eval', 'pairs', p), { jacobian: p === 'pair_2', metrics: '{"dice_mean": 0.8}' });
    mkdirSync(join(dir, 'eval', 'pairs', 'empty'));
    const scan = scanViewerFolder(dir);
    expect(scan.layout).toBe('run');
    expect(scan.pairs.map((p) => p.name)).toEqual(['pair_1', 'pair_2', 'pair_10']);
    expect(scan.pairs[1]).toMatchObject({ dir: 'eval/pairs/pair_2', volumes: { fixed: 'fixed.nii.gz', jacobian: 'jacobian.nii.gz' }, metrics: { dice_mean: 0.8 } });
    expect(scan.pairs[0].volumes.jacobian).toBeUndefined();
  });

  it('reports a broken metrics.json instead of failing', async () => {
    const dir = join(tmp.dir, 'bad-metrics');
    await writeTinyOutput(dir, { metrics: '{ "dice": ' });
    const [pair] = scanViewerFolder(dir).pairs;
    expect(pair.metrics).toMatchObject({ error: expect.stringMatching(/metrics\.json is not valid JSON/) });
  });
});

describe('serveViewer: HTTP', () => {
  let server: ViewerServer;
  let dir: string;
  beforeAll(async () => {
    dir = join(tmp.dir, 'served');
    await writeTinyOutput(dir, { jacobian: true, metrics: '{"dice_mean": 0.5}' });
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(tmp.dir, 'secret.txt'), 'outside the served folder');
    symlinkSync(join(tmp.dir, 'secret.txt'), join(dir, 'escape.txt'));
    server = await serveViewer({ folder: dir });
  });
  afterAll(() => server?.close());

  it('listens on loopback on an ephemeral port', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(server.port).toBeGreaterThan(0);
  });

  it('serves the page, NiiVue from node_modules, the folder manifest and the volumes with their content types', async () => {
    const page = await rawRequest(server.url, '/');
    expect(page.status).toBe(200);
    expect(page.type).toBe('text/html; charset=utf-8');
    expect(page.body.toString()).toContain('<script type="module" src="/app.js">');

    const app = await rawRequest(server.url, '/app.js');
    expect(app.type).toBe('text/javascript; charset=utf-8');
    expect(app.body.toString()).toContain("from '/vendor/niivue.js'");
    expect((await rawRequest(server.url, '/style.css')).type).toBe('text/css; charset=utf-8');

    const niivue = await rawRequest(server.url, '/vendor/niivue.js');
    expect(niivue.status).toBe(200);
    expect(niivue.type).toBe('text/javascript; charset=utf-8');
    // The self-contained bundle: no bare-specifier imports a browser could not resolve.
    expect(niivue.body.toString()).not.toMatch(/^import .* from ['"][^./]/m);
    expect(niivue.body.toString()).toContain('Niivue');

    const manifest = await rawRequest(server.url, '/api/folder');
    expect(manifest.type).toBe('application/json; charset=utf-8');
    expect(JSON.parse(manifest.body.toString())).toMatchObject({ name: 'served', layout: 'output', pairs: [{ name: 'served', dir: '', metrics: { dice_mean: 0.5 } }] });

    const fixed = await rawRequest(server.url, '/files/fixed.nii.gz');
    expect(fixed.status).toBe(200);
    expect(fixed.type).toBe('application/gzip');
    expect(fixed.body.equals(readFileSync(join(dir, 'fixed.nii.gz')))).toBe(true);
    expect((await rawRequest(server.url, '/files/metrics.json')).type).toBe('application/json; charset=utf-8');
    const head = await rawRequest(server.url, '/files/fixed.nii.gz', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
  });

  it.each([
    '/files/../secret.txt',
    '/files/%2e%2e/secret.txt',
    '/files/..%2fsecret.txt',
    '/files/sub/../../secret.txt',
    '/../secret.txt',
    '/files//etc/passwd',
    '/files/%2Fetc%2Fpasswd',
    '/files/..%5csecret.txt',
    '/files/C:%5cWindows',
    '/files/escape.txt',
  ])('refuses %s with 403', async (path) => {
    const r = await rawRequest(server.url, path);
    expect(r.status).toBe(403);
    expect(r.body.toString()).not.toContain('outside the served folder');
  });

  it('lists no folders and knows no other routes', async () => {
    expect((await rawRequest(server.url, '/files/')).status).toBe(404);
    expect((await rawRequest(server.url, '/files/sub')).status).toBe(404);
    expect((await rawRequest(server.url, '/files/sub/')).status).toBe(404);
    expect((await rawRequest(server.url, '/files/nope.nii.gz')).status).toBe(404);
    expect((await rawRequest(server.url, '/vendor/other.js')).status).toBe(404);
    expect((await rawRequest(server.url, '/files/fixed.nii.gz', 'POST')).status).toBe(405);
  });
});

/** Pixel statistics of one rectangle of a decoded screenshot. */
function regionStats(png: PNG, box: { x: number; y: number; width: number; height: number }) {
  const x0 = Math.max(0, Math.round(box.x));
  const y0 = Math.max(0, Math.round(box.y));
  const x1 = Math.min(png.width, Math.round(box.x + box.width));
  const y1 = Math.min(png.height, Math.round(box.y + box.height));
  const greys = new Set<number>();
  let total = 0;
  let foreground = 0;
  let coloured = 0;
  let red = 0;
  let blue = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const o = (y * png.width + x) * 4;
      const [r, g, b] = [png.data[o], png.data[o + 1], png.data[o + 2]];
      total++;
      const hi = Math.max(r, g, b);
      const lo = Math.min(r, g, b);
      if (hi > 12) foreground++;
      if (hi - lo <= 3 && hi > 12) greys.add(r);
      if (hi - lo > 60) coloured++;
      if (r > g + 60 && r > b + 60) red++;
      if (b > r + 60 && b > g + 20) blue++;
    }
  }
  return { greyLevels: greys.size, foreground: foreground / total, coloured: coloured / total, red: red / total, blue: blue / total };
}

async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS, timeout: 60_000 });
}

/** Open the viewer and wait until every panel has drawn (or the page reports an error). */
async function openViewer(browser: Browser, url: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(url);
  await page.waitForFunction(() => document.documentElement.dataset.viewer !== 'loading', null, { timeout: 150_000 });
  const state = await page.evaluate(() => ({ viewer: document.documentElement.dataset.viewer, error: document.documentElement.dataset.error }));
  expect(state, `page errors: ${problems.join('; ')}`).toEqual({ viewer: 'ready', error: undefined });
  return page;
}

describe.skipIf(!hasChromium || !hasMricron)('the viewer page in headless Chromium', () => {
  let browser: Browser;
  let outDir: string;
  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    outDir = join(tmp.dir, 'colin27-output');
    await writeBrainOutput(outDir, mricron);
    browser = await launch();
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
  });

  it('shows fixed, moving, warped and det J with label overlays and the metrics table, crosshairs in sync', async () => {
    const server = await serveViewer({ folder: outDir });
    try {
      const page = await openViewer(browser, server.url);
      expect(await page.locator('.panel').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.panel))).toEqual(['fixed', 'moving', 'warped', 'jacobian']);
      expect(await page.locator('#metrics').innerText()).toMatch(/dice_mean\s+0\.\d+/);
      expect(await page.locator('#pair-control').isHidden()).toBe(true);

      const file = join(shots, 'viewer.png');
      const png = PNG.sync.read(await page.screenshot({ path: file }));
      const stats: Record<string, ReturnType<typeof regionStats>> = {};
      for (const key of ['fixed', 'moving', 'warped', 'jacobian']) {
        const box = await page.locator(`[data-panel="${key}"] canvas`).boundingBox();
        expect(box, key).not.toBeNull();
        stats[key] = regionStats(png, box!);
      }
      // A blank or failed WebGL canvas is one flat colour; anatomy gives many grey levels and covers a
      // good part of each multiplanar panel.
      for (const key of ['fixed', 'moving', 'warped']) {
        expect(stats[key].greyLevels, `${key}: ${JSON.stringify(stats[key])}`).toBeGreaterThan(40);
        expect(stats[key].foreground, key).toBeGreaterThan(0.08);
        expect(stats[key].coloured, `${key}: label colours`).toBeGreaterThan(0.02);
      }
      // det J varies around 1: both compression (blue) and expansion (red) must show, well above what
      // the other panels' crosshair and text contribute.
      expect(stats.jacobian.red, JSON.stringify(stats)).toBeGreaterThan(stats.fixed.red + 0.02);
      expect(stats.jacobian.blue, JSON.stringify(stats)).toBeGreaterThan(stats.fixed.blue + 0.02);

      // Hiding the labels removes their colours (the overlay really is a separate, adjustable layer).
      await page.locator('#labels-visible').uncheck();
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      const noLabels = PNG.sync.read(await page.screenshot());
      const fixedBox = (await page.locator('[data-panel="fixed"] canvas').boundingBox())!;
      expect(regionStats(noLabels, fixedBox).coloured).toBeLessThan(stats.fixed.coloured / 4);

      // A click in the moving panel moves every crosshair to the same world position.
      const movingBox = (await page.locator('[data-panel="moving"] canvas').boundingBox())!;
      const before = await page.evaluate(() => (window as any).llmedViewer.panels.map((p: any) => Array.from(p.nv.frac2mm(p.nv.scene.crosshairPos)).slice(0, 3)));
      await page.mouse.click(movingBox.x + movingBox.width * 0.13, movingBox.y + movingBox.height * 0.42);
      await page.waitForFunction(() => {
        const panels = (window as any).llmedViewer.panels;
        const mm = panels.map((p: any) => Array.from(p.nv.frac2mm(p.nv.scene.crosshairPos)) as number[]);
        return mm.every((m: number[]) => m.every((v, i) => Math.abs(v - mm[1][i]) < 1.5));
      }, null, { timeout: 30_000 });
      const after = await page.evaluate(() => (window as any).llmedViewer.panels.map((p: any) => Array.from(p.nv.frac2mm(p.nv.scene.crosshairPos)).slice(0, 3)));
      expect(after[1]).not.toEqual(before[1]);
      expect(await page.locator('#location').innerText()).toMatch(/Moving\s+I /);
      await page.close();
    } finally {
      await server.close();
    }
  }, 240_000);

  it('a label layer colours only its labels, not the whole volume box (one label, float data, as a gland mask is often saved)', async () => {
    const dir = join(tmp.dir, 'one-label-output');
    cpSync(outDir, dir, { recursive: true });
    for (const name of ['fixed_labels', 'moving_labels', 'warped_labels']) {
      const v = await readNifti(join(dir, `${name}.nii.gz`));
      await writeNifti(join(dir, `${name}.nii.gz`), { ...v, data: Float32Array.from(v.data, (x) => (x > 0 ? 1 : 0)), datatype: 'float32', intent: undefined });
    }
    const server = await serveViewer({ folder: dir });
    try {
      const page = await openViewer(browser, server.url);
      const png = PNG.sync.read(await page.screenshot());
      for (const key of ['fixed', 'moving', 'warped']) {
        const s = regionStats(png, (await page.locator(`[data-panel="${key}"] canvas`).boundingBox())!);
        expect(s.coloured, `${key}: ${JSON.stringify(s)}`).toBeGreaterThan(0.02);
        // the mask covers the brain only: far less than the panel, and no more than the anatomy does
        expect(s.coloured, `${key}: ${JSON.stringify(s)}`).toBeLessThan(Math.max(0.5, s.foreground * 1.5));
      }
    } finally {
      await server.close();
    }
  });

  it('offers a pair selector for a run folder and switches pairs', async () => {
    const run = join(tmp.dir, 'run-colin27');
    cpSync(outDir, join(run, 'eval', 'pairs', 'colin27_a'), { recursive: true });
    cpSync(outDir, join(run, 'eval', 'pairs', 'colin27_b'), { recursive: true });
    // The second pair has no det J and no labels: the page must adapt its panels and controls.
    for (const f of ['jacobian.nii.gz', 'fixed_labels.nii.gz', 'moving_labels.nii.gz', 'warped_labels.nii.gz', 'metrics.json']) rmSync(join(run, 'eval', 'pairs', 'colin27_b', f));
    const server = await serveViewer({ folder: run });
    try {
      const page = await openViewer(browser, server.url);
      expect(await page.evaluate(() => document.documentElement.dataset.pair)).toBe('colin27_a');
      expect(await page.locator('#pair-select option').allInnerTexts()).toEqual(['colin27_a', 'colin27_b']);
      await page.locator('#pair-select').selectOption('colin27_b');
      await page.waitForFunction(() => document.documentElement.dataset.pair === 'colin27_b' && document.documentElement.dataset.viewer === 'ready', null, { timeout: 150_000 });
      expect(await page.locator('.panel').count()).toBe(3);
      expect(await page.locator('#label-controls').isHidden()).toBe(true);
      expect(await page.locator('#metrics').innerText()).toMatch(/no metrics\.json/);
      expect(page.url()).toMatch(/\?pair=colin27_b$/);
      const png = PNG.sync.read(await page.screenshot({ path: join(shots, 'viewer-run-pair-b.png') }));
      for (const key of ['fixed', 'moving', 'warped']) {
        const s = regionStats(png, (await page.locator(`[data-panel="${key}"] canvas`).boundingBox())!);
        expect(s.greyLevels, key).toBeGreaterThan(40);
        expect(s.foreground, key).toBeGreaterThan(0.08);
      }
      await page.close();
    } finally {
      await server.close();
    }
  }, 300_000);
});

describe('serveViewer: report evaluation folders', () => {
  it('finds the samples of an evaluation folder, with their CT, question, choices, scores and the table', async () => {
    const dir = join(tmp.dir, 'report-eval');
    const fixture = await writeReportEval(dir);
    const scan = scanViewerFolder(dir);
    expect(scan.layout).toBe('report');
    expect(scan.pairs).toEqual([]);
    expect(scan.evalDir).toBe('');
    expect(scan.samples!.map((s) => s.id)).toEqual(fixture.samples.map((s) => s.id));
    const [abdomen, chest, vqa] = scan.samples!;
    expect(abdomen).toMatchObject({
      kind: 'report', region: 'abdomen', scanId: 'amos_0001', prompt: fixture.samples[0].prompt, reference: fixture.samples[0].answer,
      generated: fixture.samples[0].generated, scores: { bleu: 0.31, 'rouge-l': 0.52 }, finish: 'stop', ct: 'samples/amos_0001-abdomen.nii.gz',
    });
    expect(abdomen.question).toBeUndefined();
    expect(chest.scores).toEqual({ bleu: null, 'rouge-l': 0.28 });
    expect(vqa).toMatchObject({ kind: 'vqa', question: 'Is there a pleural effusion?', options: { B: 'yes, right' }, reference: 'B', generated: 'D', scores: { correct: 0 } });
    expect(scan.table).toMatchObject({ split: 'test', rows: [{ region: 'abdomen' }, { region: 'chest' }, { region: 'all', n: 2 }], vqa: { chance: 0.25 } });
    // The CT the page will load is the file writeNifti wrote.
    const ct = await readNifti(join(dir, abdomen.ct!));
    expect(ct.dims).toEqual([...fixture.dims[abdomen.id]]);
  });

  it('finds a report run folder by its eval/ subfolder, with CT paths from the run folder', async () => {
    const run = join(tmp.dir, 'report-run');
    await writeReportEval(join(run, 'eval'));
    writeFileSync(join(run, 'config.json'), '{}');
    const scan = scanViewerFolder(run);
    expect(scan).toMatchObject({ layout: 'report', evalDir: 'eval' });
    expect(scan.samples![2].ct).toBe('eval/samples/amos_0002-q0.nii.gz');
  });

  it('keeps a sample whose CT was not written or is a symbolic link, saying why it has none', async () => {
    const dir = join(tmp.dir, 'report-no-ct');
    await writeReportEval(dir, { withoutCt: ['amos_0001-chest'] });
    renameSync(join(dir, 'samples', 'amos_0002-q0.nii.gz'), join(tmp.dir, 'outside-ct.nii.gz'));
    symlinkSync(join(tmp.dir, 'outside-ct.nii.gz'), join(dir, 'samples', 'amos_0002-q0.nii.gz'));
    const [abdomen, chest, vqa] = scanViewerFolder(dir).samples!;
    expect(abdomen.ct).toBe('samples/amos_0001-abdomen.nii.gz');
    expect(chest).toMatchObject({ ct: null, ctNote: expect.stringMatching(/amos_0001-chest\.nii\.gz was not written/) });
    expect(vqa).toMatchObject({ ct: null, ctNote: expect.stringMatching(/amos_0002-q0\.nii\.gz is a symbolic link/) });
  });

  /** Write a report folder whose samples.json is `content` (a string as is, anything else as JSON). */
  async function brokenReport(name: string, content: unknown): Promise<string> {
    const dir = join(tmp.dir, name);
    await writeReportEval(dir);
    writeFileSync(join(dir, 'samples.json'), typeof content === 'string' ? content : JSON.stringify(content));
    return dir;
  }

  it.each([
    ['not JSON', '[{"id": ', /samples\.json: not valid JSON/],
    ['not a list', { rows: [] }, /samples\.json: not a list of samples/],
    ['empty', [], /samples\.json: lists no samples/],
    ['an entry without an id', [{ kind: 'report', prompt: 'p', answer: 'a', generated: 'g' }], /samples\.json: sample 0 has no string id/],
    ['a path as id', [{ ...reportSamples()[0], id: '../../etc/passwd' }], /samples\.json: sample 0 has an unsafe id "\.\.\/\.\.\/etc\/passwd"/],
    ['a backslash in an id', [reportSamples()[0], { ...reportSamples()[1], id: '..\\x' }], /sample 1 has an unsafe id/],
    ['a repeated id', [reportSamples()[0], reportSamples()[0]], /sample 1 repeats the id amos_0001-abdomen/],
    ['an unknown kind', [{ ...reportSamples()[0], kind: 'caption' }], /sample 0 \(amos_0001-abdomen\) has kind "caption"/],
    ['an entry without its reference', [{ ...reportSamples()[0], answer: undefined }], /sample 0 \(amos_0001-abdomen\) lacks the string field "answer"/],
  ])('refuses a samples.json with %s, naming the file and the entry', async (name, content, pattern) => {
    const dir = await brokenReport(`report-bad-${name.replace(/\W+/g, '-')}`, content);
    const err = expectDataError(() => scanViewerFolder(dir), pattern);
    expect(err.where).toBe(join(dir, 'samples.json'));
    await expect(serveViewer({ folder: dir })).rejects.toMatchObject({ kind: 'data' });
  });

  it("refuses a prepared dataset's samples.json (no generations), pointing at llmed evaluate", async () => {
    const prepared = reportSamples().map(({ generated: _g, scores: _s, finish: _f, ...rest }) => rest);
    const dir = await brokenReport('report-prepared', { samples: prepared });
    const err = expectDataError(() => scanViewerFolder(dir), /sample 0 \(amos_0001-abdomen\) has no "generated" text: this is not an evaluation's samples\.json/);
    expect(err.hint).toMatch(/llmed evaluate/);
  });

  it('refuses a samples.json or an eval/ folder that is a symbolic link', async () => {
    const real = join(tmp.dir, 'report-real');
    await writeReportEval(real);
    const linkedFile = join(tmp.dir, 'report-linked-file');
    mkdirSync(linkedFile);
    symlinkSync(join(real, 'samples.json'), join(linkedFile, 'samples.json'));
    expectDataError(() => scanViewerFolder(linkedFile), /report-linked-file\/samples\.json: is a symbolic link/);
    const linkedEval = join(tmp.dir, 'report-linked-eval');
    mkdirSync(linkedEval);
    symlinkSync(real, join(linkedEval, 'eval'));
    expectDataError(() => scanViewerFolder(linkedEval), /report-linked-eval\/eval: is a symbolic link/);
  });

  it('names all three layouts when a folder has none of them', () => {
    const dir = join(tmp.dir, 'report-nothing');
    mkdirSync(join(dir, 'eval'), { recursive: true });
    const err = expectDataError(() => scanViewerFolder(dir), /nothing to view: missing fixed\.nii\.gz, moving\.nii\.gz, warped\.nii\.gz \(and no eval\/pairs\/ subfolders, no samples\.json of a report evaluation here or in eval\/\)/);
    expect(err.hint).toMatch(/report evaluation/);
  });
});

describe('serveViewer: HTTP on a report evaluation', () => {
  let server: ViewerServer;
  let run: string;
  beforeAll(async () => {
    run = join(tmp.dir, 'report-served');
    await writeReportEval(join(run, 'eval'));
    writeFileSync(join(tmp.dir, 'report-secret.txt'), 'outside the served folder');
    server = await serveViewer({ folder: run });
  });
  afterAll(() => server?.close());

  it('answers /api/folder with the samples and the table, and serves each CT', async () => {
    const manifest = await rawRequest(server.url, '/api/folder');
    expect(manifest.status).toBe(200);
    expect(manifest.type).toBe('application/json; charset=utf-8');
    const body = JSON.parse(manifest.body.toString());
    expect(body).toMatchObject({ name: 'report-served', layout: 'report', pairs: [], evalDir: 'eval', table: { vqa: { n: 1 } } });
    expect(body.samples.map((s: { id: string }) => s.id)).toEqual(['amos_0001-abdomen', 'amos_0001-chest', 'amos_0002-q0']);
    expect(body.samples[1]).toMatchObject({ reference: 'Small right pleural effusion. Lungs otherwise clear.', generated: 'Lungs are clear. No pleural effusion', scores: { bleu: null } });
    for (const sample of body.samples as Array<{ ct: string }>) {
      const ct = await rawRequest(server.url, `/files/${sample.ct.split('/').map(encodeURIComponent).join('/')}`);
      expect(ct.status).toBe(200);
      expect(ct.type).toBe('application/gzip');
      expect(ct.body.equals(readFileSync(join(run, sample.ct)))).toBe(true);
    }
    expect((await rawRequest(server.url, '/files/eval/samples/amos_0001-abdomen.md')).type).toBe('text/markdown; charset=utf-8');
  });

  it.each(['/files/eval/samples/../../../report-secret.txt', '/files/eval/samples/..%2f..%2f..%2freport-secret.txt', '/files/eval/..%5c..%5creport-secret.txt'])('refuses %s with 403', async (path) => {
    const r = await rawRequest(server.url, path);
    expect(r.status).toBe(403);
    expect(r.body.toString()).not.toContain('outside the served folder');
  });

  it('tells the page why when samples.json breaks under a running viewer', async () => {
    const file = join(run, 'eval', 'samples.json');
    const saved = readFileSync(file);
    try {
      writeFileSync(file, '[]');
      const r = await rawRequest(server.url, '/api/folder');
      expect(r.status).toBe(404);
      expect(JSON.parse(r.body.toString()).error).toMatch(/samples\.json: lists no samples/);
    } finally {
      writeFileSync(file, saved);
    }
  });
});

/**
 * Run `llmed view <folder> --port 0` as a user would, read the URL it prints, ask its API, then stop it
 * with Ctrl-C (SIGINT to the process this test started). Returns the printed line and the API's answer.
 */
async function viewThroughCli(folder: string): Promise<{ line: string; api: Record<string, unknown>; code: number | null }> {
  const child = spawn(process.execPath, [cliBin, 'view', folder, '--port', '0'], { cwd: repoRoot, env: { ...process.env, FORCE_COLOR: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`llmed view printed no URL in 60 s; stderr: ${stderr}`)), 60_000);
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
        const found = stdout.split('\n').find((l) => l.startsWith('viewer: http'));
        if (found) { clearTimeout(timer); resolve(found); }
      });
      void exited.then((code) => { clearTimeout(timer); reject(new Error(`llmed view exited with ${code}; stderr: ${stderr}`)); });
    });
    const url = line.match(/http:\/\/\S+/)![0];
    const api = JSON.parse((await rawRequest(url, '/api/folder')).body.toString()) as Record<string, unknown>;
    child.kill('SIGINT');
    return { line, api, code: await exited };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

describe('llmed view', () => {
  it('serves a report evaluation folder and a registration output folder, and stops on Ctrl-C', async () => {
    const report = join(tmp.dir, 'cli-report-run');
    await writeReportEval(join(report, 'eval'));
    const r = await viewThroughCli(report);
    expect(r.line).toMatch(/^viewer: http:\/\/127\.0\.0\.1:\d+\/ {2}\(3 report samples; Ctrl-C to stop\)$/);
    expect(r.api).toMatchObject({ layout: 'report', evalDir: 'eval' });
    expect(r.code).toBe(0);

    const output = join(tmp.dir, 'cli-output');
    await writeTinyOutput(output);
    const o = await viewThroughCli(output);
    expect(o.line).toMatch(/\(1 pair; Ctrl-C to stop\)$/);
    expect(o.api).toMatchObject({ layout: 'output', pairs: [{ name: 'cli-output' }] });
    expect(o.code).toBe(0);
  }, 150_000);
});

describe.skipIf(!hasChromium)('the viewer page on a report evaluation in headless Chromium', () => {
  let browser: Browser;
  let run: string;
  let fixture: Awaited<ReturnType<typeof writeReportEval>>;
  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    run = join(tmp.dir, 'report-browser-run');
    // The chest report has no CT: the page must still show its texts and say why the CT is missing.
    fixture = await writeReportEval(join(run, 'eval'), { withoutCt: ['amos_0001-chest'] });
    browser = await launch();
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
  });

  /** The CT NiiVue holds: how many volumes, the first one's name and grid. */
  const loadedCt = (page: Page) => page.evaluate(() => {
    const panels = (window as any).llmedViewer.panels;
    return panels.map((p: any) => ({ key: p.spec.key, volumes: p.nv.volumes.length, name: p.nv.volumes[0]?.name, dims: Array.from(p.nv.volumes[0]?.hdr.dims ?? []).slice(1, 4) }));
  });
  const text = (page: Page, key: string) => page.locator(`[data-text="${key}"] .text`).first().innerText();

  it("shows a sample's CT in NiiVue beside its prompt, reference and generated report; VQA with its choices and letters", async () => {
    const server = await serveViewer({ folder: run });
    try {
      const page = await openViewer(browser, server.url);
      const [abdomen, chest, vqa] = fixture.samples;
      expect(await page.evaluate(() => document.documentElement.dataset.sample)).toBe(abdomen.id);
      expect(await page.locator('#sample-select option').allInnerTexts()).toEqual(['amos_0001-abdomen (report, abdomen)', 'amos_0001-chest (report, chest)', 'amos_0002-q0 (vqa)']);
      expect(await page.locator('#pair-control').isHidden()).toBe(true);
      expect(await page.locator('#report').isVisible()).toBe(true);

      // The CT: one NiiVue panel holding samples/<id>.nii.gz with the grid writeNifti wrote.
      expect(await loadedCt(page)).toEqual([{ key: 'ct', volumes: 1, name: `${abdomen.id}.nii.gz`, dims: [...fixture.dims[abdomen.id]] }]);
      // The three texts, verbatim, beside it.
      expect(await text(page, 'prompt')).toBe(abdomen.prompt);
      expect(await text(page, 'reference')).toBe(abdomen.answer);
      expect(await text(page, 'generated')).toBe(abdomen.generated);
      expect(await page.locator('[data-text="scores"]').innerText()).toMatch(/rouge-l\s+0\.52/);
      expect(await page.locator('#metrics').innerText()).toMatch(/all\s+2\s+0\.2\s+0\.4 \[0\.28, 0\.52\]/);
      expect(await page.locator('#metrics').innerText()).toMatch(/VQA accuracy 0 \[0, 0\] on 1 questions; chance 0\.25/);

      // ... and it is drawn: the CT canvas and the text column side by side, the canvas showing anatomy.
      const png = PNG.sync.read(await page.screenshot({ path: join(shots, 'viewer-report.png') }));
      const canvasBox = (await page.locator('[data-panel="ct"] canvas').boundingBox())!;
      const textBox = (await page.locator('#report').boundingBox())!;
      expect(textBox.x).toBeGreaterThanOrEqual(canvasBox.x + canvasBox.width - 1);
      const s = regionStats(png, canvasBox);
      expect(s.greyLevels, JSON.stringify(s)).toBeGreaterThan(30);
      expect(s.foreground, JSON.stringify(s)).toBeGreaterThan(0.08);

      // The next sample has no CT: its texts show, and the page says why there is no image.
      await page.locator('#sample-next').click();
      await page.waitForFunction((id) => document.documentElement.dataset.sample === id && document.documentElement.dataset.viewer === 'ready', chest.id, { timeout: 60_000 });
      expect(await text(page, 'reference')).toBe(chest.answer);
      expect(await text(page, 'generated')).toBe(chest.generated);
      expect(await page.locator('[data-text="generated"]').innerText()).toMatch(/stopped at the token limit/);
      expect(await page.locator('[data-text="scores"]').innerText()).toMatch(/bleu\s+–/);
      expect(await page.locator('.no-ct').innerText()).toMatch(/amos_0001-chest\.nii\.gz was not written/);
      expect(await loadedCt(page)).toEqual([]);

      // A question: its CT (another scan, another grid), the question, the choices, the answer and the model's letter.
      await page.locator('#sample-select').selectOption(vqa.id);
      await page.waitForFunction((id) => document.documentElement.dataset.sample === id && document.documentElement.dataset.viewer === 'ready', vqa.id, { timeout: 60_000 });
      expect(page.url()).toMatch(/\?sample=amos_0002-q0$/);
      expect(await loadedCt(page)).toEqual([{ key: 'ct', volumes: 1, name: `${vqa.id}.nii.gz`, dims: [...fixture.dims[vqa.id]] }]);
      expect(await text(page, 'question')).toBe('Is there a pleural effusion?');
      expect(await page.locator('[data-text="choices"] li').evaluateAll((els) => els.map((e) => [(e as HTMLElement).dataset.letter, e.className]))).toEqual([
        ['A', ''], ['B', 'is-reference'], ['C', ''], ['D', 'is-generated'],
      ]);
      expect(await text(page, 'reference')).toBe('B. yes, right');
      expect(await text(page, 'generated')).toBe('D. no');
      expect(await page.locator('[data-text="generated"] .verdict').innerText()).toBe('wrong');
      const vqaShot = PNG.sync.read(await page.screenshot({ path: join(shots, 'viewer-report-vqa.png') }));
      expect(regionStats(vqaShot, (await page.locator('[data-panel="ct"] canvas').boundingBox())!).greyLevels).toBeGreaterThan(30);
      expect(await page.locator('#sample-next').isDisabled()).toBe(true);

      // A link to a sample opens on it.
      const direct = await openViewer(browser, `${server.url}?sample=${encodeURIComponent(vqa.id)}`);
      expect(await direct.evaluate(() => document.documentElement.dataset.sample)).toBe(vqa.id);
      await direct.close();
      await page.close();
    } finally {
      await server.close();
    }
  }, 240_000);
});
