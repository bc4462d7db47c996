// The llmed viewer page: one NiiVue instance per panel (fixed, moving, warped, and det J when the folder
// has it), crosshairs synchronised in world millimetres, label maps as coloured overlays, det J as a
// diverging overlay, metrics.json as a table. For a report evaluation folder: the selected sample's CT
// beside its prompt, reference and generated text (VQA: question, choices, the correct and the model's
// letter), its scores, and the evaluation's per-region table.
//
// Plain browser ESM with no build step. NiiVue comes from the local server (/vendor/niivue.js, its
// self-contained bundle in node_modules) because the machines this runs on may be offline.
//
// Readiness contract (used by the end-to-end test and handy for scripts): <html data-viewer> is
// "loading" while volumes load, "ready" once every panel has drawn its volumes, "error" on failure
// (with data-error holding the message). data-pair names the pair shown; for a report evaluation,
// data-sample names the sample shown (its CT in one NiiVue panel, its texts beside it).
import { Niivue, SLICE_TYPE, MULTIPLANAR_TYPE, SHOW_RENDER, cmapper } from '/vendor/niivue.js';

const DETJ_COLORMAP = 'llmed_detj';
const FOLDING_COLORMAP = 'llmed_folding';

// det J is shown over [0, 2], centred on 1 (no volume change). Blue = compression, red = expansion;
// a clear band |det J - 1| < ~0.08 keeps the anatomy readable where the deformation is
// volume-preserving. NiiVue indexes a 256-entry table; I holds the table positions of the stops.
cmapper.addColormap(DETJ_COLORMAP, {
  R: [20, 90, 90, 235, 235, 170],
  G: [50, 150, 150, 110, 110, 20],
  B: [160, 230, 230, 80, 80, 30],
  A: [255, 255, 0, 0, 255, 255],
  I: [0, 110, 118, 138, 146, 255],
});
// Folded voxels (det J < 0) get their own colour through NiiVue's negative colormap, so that they are
// not mistaken for strong compression.
cmapper.addColormap(FOLDING_COLORMAP, {
  R: [250, 250],
  G: [230, 230],
  B: [40, 40],
  A: [255, 255],
  I: [0, 255],
});

const VIEW_MODES = {
  multiplanar: { sliceType: SLICE_TYPE.MULTIPLANAR, showRender: SHOW_RENDER.NEVER },
  render: { sliceType: SLICE_TYPE.MULTIPLANAR, showRender: SHOW_RENDER.ALWAYS },
  axial: { sliceType: SLICE_TYPE.AXIAL, showRender: SHOW_RENDER.NEVER },
  coronal: { sliceType: SLICE_TYPE.CORONAL, showRender: SHOW_RENDER.NEVER },
  sagittal: { sliceType: SLICE_TYPE.SAGITTAL, showRender: SHOW_RENDER.NEVER },
};

const $ = (id) => document.getElementById(id);
const root = document.documentElement;

/** Everything the controls act on; rebuilt when the pair changes. */
const viewer = {
  folder: null,
  pair: null,
  /** The report sample shown (report evaluation folders only). */
  sample: null,
  /** @type {Array<{ spec: object, nv: Niivue, figure: HTMLElement, layers: Record<string, number> }>} */
  panels: [],
  /** Incremented per pair load so a slow, superseded load does not mark the page ready. */
  generation: 0,
};
// For debugging from the console and for tests that want to look inside.
window.llmedViewer = viewer;

function setStatus(message, isError = false) {
  const el = $('status');
  el.textContent = message;
  el.classList.toggle('error', isError);
}

function fail(message) {
  root.dataset.viewer = 'error';
  root.dataset.error = message;
  document.title = 'llmed viewer — error';
  setStatus(message, true);
}

/** URL of one volume of a pair, served by /files/<pair dir>/<file>. */
function fileUrl(pair, role) {
  const parts = pair.dir ? pair.dir.split('/') : [];
  return '/files/' + [...parts, pair.volumes[role]].map(encodeURIComponent).join('/');
}

/** The panels a pair gets: always fixed, moving, warped; a det J panel when jacobian exists. */
function panelSpecs(pair) {
  const has = (role) => Boolean(pair.volumes[role]);
  const specs = [
    { key: 'fixed', title: 'Fixed', detail: '', base: 'fixed', labels: has('fixed_labels') ? 'fixed_labels' : null },
    { key: 'moving', title: 'Moving', detail: '', base: 'moving', labels: has('moving_labels') ? 'moving_labels' : null },
    { key: 'warped', title: 'Warped', detail: 'moving → fixed', base: 'warped', labels: has('warped_labels') ? 'warped_labels' : null },
  ];
  if (has('jacobian')) specs.push({ key: 'jacobian', title: 'det J', detail: 'Jacobian determinant over the fixed image', base: 'fixed', jacobian: 'jacobian' });
  return specs;
}

/** A distinct, stable colour per label value (golden-ratio hue steps), as RGB 0..255. */
function labelColour(value) {
  const h = (value * 0.618033988749895) % 1;
  const s = 0.7;
  const l = 0.55;
  const k = (n) => (n + h * 12) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n) => l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1));
  return [Math.round(255 * f(0)), Math.round(255 * f(8)), Math.round(255 * f(4))];
}

/** Sorted positive integer labels present in a NiiVue volume. */
function presentLabels(volume) {
  const img = volume.img;
  const slope = volume.hdr.scl_slope || 1;
  const inter = volume.hdr.scl_inter || 0;
  let max = 0;
  for (let i = 0; i < img.length; i++) {
    const v = Math.round(img[i] * slope + inter);
    if (v > max) max = v;
  }
  // A flag array is far faster than a Set on millions of voxels; label values are small integers.
  const seen = new Uint8Array(max + 1);
  for (let i = 0; i < img.length; i++) {
    const v = Math.round(img[i] * slope + inter);
    if (v > 0) seen[v] = 1;
  }
  const labels = [];
  for (let v = 1; v <= max; v++) if (seen[v]) labels.push(v);
  return labels;
}

/**
 * Turn a loaded volume into a label overlay: a lookup table with one colour per present label
 * (0 transparent). Marking it as a NIfTI label image (intent 1002, in this in-memory copy only) makes
 * NiiVue treat it as an atlas, which enables outline drawing.
 */
function makeLabelOverlay(volume) {
  const labels = presentLabels(volume);
  const cm = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [''] };
  for (const v of labels) {
    const [r, g, b] = labelColour(v);
    cm.R.push(r); cm.G.push(g); cm.B.push(b); cm.A.push(255); cm.I.push(v); cm.labels.push(String(v));
  }
  volume.hdr.intent_code = 1002;
  volume.setColormapLabel(cm);
  return labels.length;
}

function currentViewMode() {
  return VIEW_MODES[$('view-select').value] ?? VIEW_MODES.multiplanar;
}

function labelOpacity() {
  return $('labels-visible').checked ? Number($('labels-opacity').value) : 0;
}

function jacobianOpacity() {
  return $('jacobian-visible').checked ? Number($('jacobian-opacity').value) : 0;
}

async function createPanel(spec, pair, container) {
  const figure = $('panel-template').content.firstElementChild.cloneNode(true);
  figure.dataset.panel = spec.key;
  figure.querySelector('.panel-title').textContent = spec.title;
  figure.querySelector('.panel-detail').textContent = spec.detail;
  container.append(figure);
  const canvas = figure.querySelector('canvas');
  canvas.setAttribute('aria-label', `${spec.title} image`);

  const mode = currentViewMode();
  const nv = new Niivue({
    backColor: [0, 0, 0, 1],
    // Green: neither end of the blue/red det J scale, nor a typical label colour at full strength.
    crosshairColor: [0.25, 0.85, 0.45, 0.85],
    crosshairWidth: 1,
    // The side panel carries the det J legend (NiiVue's colour bar would also show the folding
    // colormap as a second, confusing bar).
    isColorbar: false,
    multiplanarLayout: MULTIPLANAR_TYPE.AUTO,
    multiplanarShowRender: mode.showRender,
    multiplanarPadPixels: 4,
    dragAndDropEnabled: false,
    isResizeCanvas: true,
    loadingText: 'loading',
    logLevel: 'warn',
    atlasOutline: $('labels-outline').checked ? 1 : 0,
  });
  await nv.attachToCanvas(canvas);

  const list = [{ url: fileUrl(pair, spec.base), name: pair.volumes[spec.base], colormap: 'gray', colorbarVisible: false }];
  const layers = { base: 0 };
  if (spec.labels) {
    layers.labels = list.length;
    list.push({ url: fileUrl(pair, spec.labels), name: pair.volumes[spec.labels], colormap: 'gray', opacity: labelOpacity(), colorbarVisible: false });
  }
  if (spec.jacobian) {
    layers.jacobian = list.length;
    list.push({
      url: fileUrl(pair, spec.jacobian),
      name: pair.volumes[spec.jacobian],
      colormap: DETJ_COLORMAP,
      cal_min: 0,
      cal_max: 2,
      colormapNegative: FOLDING_COLORMAP,
      cal_minNeg: -1,
      cal_maxNeg: 0,
      opacity: jacobianOpacity(),
      colorbarVisible: false,
    });
  }
  await nv.loadVolumes(list);
  // NiiVue logs a failed download and carries on; a panel missing a layer must not look complete.
  if (nv.volumes.length !== list.length) {
    const loaded = new Set(nv.volumes.map((v) => v.name));
    throw new Error(`could not load ${list.filter((v) => !loaded.has(v.name)).map((v) => v.name).join(', ')} for the ${spec.title} panel`);
  }

  let detail = spec.detail;
  if (spec.labels) {
    const n = makeLabelOverlay(nv.volumes[layers.labels]);
    detail = [detail, `${n} labels`].filter(Boolean).join(' · ');
  }
  const [nx, ny, nz] = nv.volumes[0].hdr.dims.slice(1, 4);
  figure.querySelector('.panel-detail').textContent = [detail, `${nx}×${ny}×${nz}`].filter(Boolean).join(' · ');
  nv.setSliceType(mode.sliceType);
  nv.updateGLVolume();
  return { spec, nv, figure, layers };
}

function releasePanel(panel) {
  try {
    panel.nv.cleanup?.();
    // Browsers cap live WebGL contexts (about 16); free ours instead of waiting for GC.
    panel.nv.gl?.getExtension('WEBGL_lose_context')?.loseContext();
  } catch {
    // a context that is already gone needs no freeing
  }
  panel.figure.remove();
}

function disposePanels() {
  for (const panel of viewer.panels) releasePanel(panel);
  viewer.panels = [];
}

function formatValue(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : String(Number(v.toPrecision(4)));
}

/** Show the values of every panel's volumes at the crosshair, in world mm. */
function showLocation(source) {
  const mm = source.nv.frac2mm(source.nv.scene.crosshairPos);
  const lines = [`${[mm[0], mm[1], mm[2]].map((x) => x.toFixed(1)).join(' × ')} mm`];
  for (const panel of viewer.panels) {
    const parts = [];
    panel.nv.volumes.forEach((vol, i) => {
      // mm2vox answers in NiiVue's RAS-reoriented voxel grid, so bounds come from dimsRAS.
      const vox = vol.mm2vox(mm);
      const dims = vol.dimsRAS ?? vol.hdr.dims;
      const inside = Array.from(vox).every((c, axis) => c >= 0 && c < dims[axis + 1]);
      const value = inside ? vol.getValue(vox[0], vox[1], vox[2]) : NaN;
      const role = i === panel.layers.labels ? 'label' : i === panel.layers.jacobian ? 'det J' : 'I';
      parts.push(`${role} ${Number.isNaN(value) ? '–' : formatValue(role === 'label' ? Math.round(value) : value)}`);
    });
    lines.push(`${panel.spec.title.padEnd(7)} ${parts.join('  ')}`);
  }
  $('location').textContent = lines.join('\n');
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

const isScalar = (v) => v === null || ['number', 'string', 'boolean'].includes(typeof v);

/** Summary of a numeric array: mean ± sd (n). */
function summarise(values) {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, n - 1));
  return `${formatValue(mean)} ± ${formatValue(sd)} (n=${n})`;
}

/**
 * metrics.json as tables. Its exact shape belongs to `llmed evaluate`, so render any JSON: scalars as
 * rows, numeric arrays as mean ± sd, nested objects as their own collapsible table (open when small).
 */
function metricsTable(obj, depth = 0) {
  const table = el('table');
  const nested = [];
  for (const [key, value] of Object.entries(obj)) {
    if (isScalar(value)) table.append(el('tr', {}, el('th', {}, key), el('td', {}, formatValue(value))));
    else if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'number')) table.append(el('tr', {}, el('th', {}, key), el('td', {}, summarise(value))));
    else if (Array.isArray(value) && value.every(isScalar)) table.append(el('tr', {}, el('th', {}, key), el('td', {}, value.map(formatValue).join(', '))));
    else if (typeof value === 'object') nested.push([key, value]);
  }
  const box = el('div');
  if (table.rows.length > 0) box.append(table);
  for (const [key, value] of nested) {
    const entries = Object.keys(value).length;
    const details = el('details', entries <= 12 && depth === 0 ? { open: '' } : {}, el('summary', {}, `${key} (${entries})`));
    details.append(depth < 3 ? metricsTable(value, depth + 1) : el('pre', {}, JSON.stringify(value, null, 1)));
    box.append(details);
  }
  return box;
}

function renderMetrics(metrics) {
  const box = $('metrics');
  box.replaceChildren();
  if (metrics === null || metrics === undefined) box.append(el('p', { class: 'muted' }, 'no metrics.json in this folder'));
  else if (typeof metrics === 'object' && !Array.isArray(metrics) && typeof metrics.error === 'string' && Object.keys(metrics).length === 1) box.append(el('p', { class: 'error' }, metrics.error));
  else if (typeof metrics !== 'object') box.append(el('p', {}, formatValue(metrics)));
  else box.append(metricsTable(metrics));
}

/** Two animation frames: NiiVue draws on the next frame, and a screenshot should see that frame. */
const nextFrames = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));

async function showPair(name) {
  const pair = viewer.folder.pairs.find((p) => p.name === name) ?? viewer.folder.pairs[0];
  const generation = ++viewer.generation;
  root.dataset.viewer = 'loading';
  root.dataset.pair = pair.name;
  delete root.dataset.error;
  setStatus(`loading ${pair.name}…`);
  viewer.pair = pair;
  disposePanels();

  const specs = panelSpecs(pair);
  const container = $('panels');
  container.className = `panels count-${specs.length}`;
  $('label-controls').hidden = !specs.some((s) => s.labels);
  $('jacobian-controls').hidden = !specs.some((s) => s.jacobian);
  $('jacobian-legend').hidden = !specs.some((s) => s.jacobian);
  renderMetrics(pair.metrics);

  // Panels load concurrently: with a software renderer (SwiftShader) the shader compilation of one
  // context overlaps the volume upload of another. Each panel appends its figure before its first
  // await, so the order on screen is the order of specs.
  const panels = await Promise.all(specs.map((spec) => createPanel(spec, pair, container)));
  if (generation !== viewer.generation) return; // another pair was picked meanwhile
  viewer.panels = panels;

  // Every panel drives the others: NiiVue only broadcasts from the canvas that has focus.
  for (const panel of panels) {
    panel.nv.broadcastTo(panels.filter((p) => p !== panel).map((p) => p.nv), { '2d': true, '3d': true });
    panel.nv.onLocationChange = () => showLocation(panel);
  }
  for (const panel of panels) panel.nv.drawScene();
  showLocation(panels[0]);
  await nextFrames();
  if (generation !== viewer.generation) return;
  setStatus('');
  document.title = `llmed viewer — ${pair.name}`;
  root.dataset.viewer = 'ready';
}

function wireControls() {
  $('pair-select').addEventListener('change', (e) => {
    const url = new URL(location.href);
    url.searchParams.set('pair', e.target.value);
    history.replaceState(null, '', url);
    showPair(e.target.value).catch((err) => fail(`could not show ${e.target.value}: ${err?.message ?? err}`));
  });
  $('view-select').addEventListener('change', () => {
    const mode = currentViewMode();
    for (const { nv } of viewer.panels) {
      nv.opts.multiplanarShowRender = mode.showRender;
      nv.setSliceType(mode.sliceType);
    }
  });
  const updateLabels = () => {
    for (const { nv, layers } of viewer.panels) if (layers.labels !== undefined) nv.setOpacity(layers.labels, labelOpacity());
  };
  $('labels-visible').addEventListener('change', updateLabels);
  $('labels-opacity').addEventListener('input', updateLabels);
  $('labels-outline').addEventListener('change', (e) => {
    for (const { nv, layers } of viewer.panels) if (layers.labels !== undefined) nv.setAtlasOutline(e.target.checked ? 1 : 0);
  });
  const updateJacobian = () => {
    for (const { nv, layers } of viewer.panels) if (layers.jacobian !== undefined) nv.setOpacity(layers.jacobian, jacobianOpacity());
  };
  $('jacobian-visible').addEventListener('change', updateJacobian);
  $('jacobian-opacity').addEventListener('input', updateJacobian);
}

// ---- report evaluations -------------------------------------------------------------------------

/** One titled block of text in the report column; `data-text` names it for tests and scripts. */
function textBlock(key, title, ...content) {
  return el('section', { class: 'text-block', 'data-text': key }, el('h3', {}, title), ...content);
}

const para = (text) => el('p', { class: 'text' }, text);

/** A choice as `B. text`, or the bare letter when the sample has no such option. */
function choiceText(sample, letter) {
  const text = sample.options?.[letter];
  return text === undefined ? letter : `${letter}. ${text}`;
}

function scoresTable(scores) {
  const entries = Object.entries(scores ?? {});
  if (entries.length === 0) return el('p', { class: 'muted' }, 'no per-sample scores');
  return el('table', {}, ...entries.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v === null ? '–' : formatValue(v)))));
}

function renderSampleTexts(sample) {
  const region = sample.region ? ` · ${sample.region}` : '';
  $('sample-title').replaceChildren(sample.id, ' ', el('span', { class: 'muted' }, `${sample.kind}${region}${sample.scanId ? ` · scan ${sample.scanId}` : ''}`));
  const blocks = [];
  if (sample.kind === 'vqa') {
    blocks.push(textBlock('question', 'Question', para(sample.question ?? sample.prompt)));
    const letters = Object.keys(sample.options ?? {});
    const items = letters.map((letter) => {
      const li = el('li', { 'data-letter': letter }, `${letter}. ${sample.options[letter]}`);
      if (letter === sample.reference) { li.classList.add('is-reference'); li.append(el('span', { class: 'tag reference' }, 'answer')); }
      if (letter === sample.generated) { li.classList.add('is-generated'); li.append(el('span', { class: 'tag model' }, 'model')); }
      return li;
    });
    blocks.push(textBlock('choices', 'Choices', items.length ? el('ul', { class: 'choices' }, ...items) : el('p', { class: 'muted' }, 'no choices recorded')));
    blocks.push(textBlock('reference', 'Answer (reference)', para(choiceText(sample, sample.reference))));
    const right = sample.generated === sample.reference;
    blocks.push(textBlock('generated', "Model's letter", para(choiceText(sample, sample.generated)), el('p', { class: `verdict ${right ? 'right' : 'wrong'}` }, right ? 'correct' : 'wrong')));
  } else {
    blocks.push(textBlock('prompt', 'Prompt', para(sample.prompt)));
    blocks.push(textBlock('reference', 'Reference report', para(sample.reference)));
    const generated = textBlock('generated', 'Generated report', para(sample.generated));
    // A report cut at the token limit reads as finished unless the page says so.
    if (sample.finish === 'length') generated.append(el('p', { class: 'note' }, 'stopped at the token limit'));
    blocks.push(generated);
  }
  blocks.push(textBlock('scores', 'Scores', el('div', { class: 'scores' }, scoresTable(sample.scores))));
  $('sample-texts').replaceChildren(...blocks);
}

const intervalText = (m) => {
  if (!m || typeof m !== 'object') return '';
  if (m.skipped) return `skipped: ${m.skipped}`;
  const value = m.value === null || m.value === undefined ? '–' : formatValue(m.value);
  return m.interval && Number.isFinite(m.interval.lo) ? `${value} [${formatValue(m.interval.lo)}, ${formatValue(m.interval.hi)}]` : value;
};

/** table.json of a report evaluation: one row per region (n, each metric with its interval), then VQA. */
function renderEvalTable(table) {
  const box = $('metrics');
  box.replaceChildren();
  if (table === null || table === undefined) return box.append(el('p', { class: 'muted' }, 'no table.json in this folder'));
  if (typeof table.error === 'string') return box.append(el('p', { class: 'error' }, table.error));
  const rows = Array.isArray(table.rows) ? table.rows : [];
  if (rows.length > 0) {
    const ids = [...new Set(rows.flatMap((r) => Object.keys(r.metrics ?? {})))];
    box.append(el('table', { class: 'eval-table' },
      el('tr', {}, el('th', {}, 'region'), el('th', {}, 'n'), ...ids.map((id) => el('th', {}, id))),
      ...rows.map((r) => el('tr', {}, el('td', {}, String(r.region)), el('td', {}, String(r.n)), ...ids.map((id) => el('td', {}, intervalText(r.metrics?.[id])))))));
  }
  if (table.vqa && typeof table.vqa === 'object') {
    const v = table.vqa;
    box.append(el('p', { class: 'vqa-summary' }, `VQA accuracy ${intervalText({ value: v.accuracy, interval: v.interval })} on ${v.n} questions; chance ${formatValue(v.chance)}`));
  }
  if (box.childElementCount === 0) box.append(metricsTable(table));
}

/** The folder-relative path of a CT as a pseudo pair, so createPanel and fileUrl serve it unchanged. */
function ctPair(sample) {
  const parts = sample.ct.split('/');
  return { name: sample.id, dir: parts.slice(0, -1).join('/'), volumes: { ct: parts.at(-1) } };
}

async function showSample(id) {
  const samples = viewer.folder.samples;
  const index = Math.max(0, samples.findIndex((s) => s.id === id));
  const sample = samples[index];
  const generation = ++viewer.generation;
  root.dataset.viewer = 'loading';
  root.dataset.sample = sample.id;
  delete root.dataset.error;
  setStatus(`loading ${sample.id}…`);
  viewer.sample = sample;
  $('sample-select').value = sample.id;
  $('sample-prev').disabled = index === 0;
  $('sample-next').disabled = index === samples.length - 1;
  disposePanels();
  const container = $('panels');
  container.replaceChildren();
  container.className = 'panels count-1';
  renderSampleTexts(sample);

  if (sample.ct) {
    const panel = await createPanel({ key: 'ct', title: 'CT', detail: 'the prepared volume the model saw', base: 'ct' }, ctPair(sample), container);
    if (generation !== viewer.generation) {
      // Another sample was picked while this CT loaded: its context would otherwise stay alive.
      releasePanel(panel);
      return;
    }
    viewer.panels = [panel];
    panel.nv.onLocationChange = () => showLocation(panel);
    panel.nv.drawScene();
    showLocation(panel);
  } else {
    container.append(el('p', { class: 'no-ct' }, `no CT to show: ${sample.ctNote ?? 'none recorded'}`));
    $('location').textContent = '';
  }
  await nextFrames();
  if (generation !== viewer.generation) return;
  setStatus('');
  document.title = `llmed viewer — ${sample.id}`;
  root.dataset.viewer = 'ready';
}

function pickSample(id) {
  const url = new URL(location.href);
  url.searchParams.set('sample', id);
  history.replaceState(null, '', url);
  showSample(id).catch((err) => fail(`could not show ${id}: ${err?.message ?? err}`));
}

function wireReportControls() {
  const step = (delta) => {
    const samples = viewer.folder.samples;
    const i = samples.findIndex((s) => s.id === viewer.sample?.id) + delta;
    if (i >= 0 && i < samples.length) pickSample(samples[i].id);
  };
  $('sample-select').addEventListener('change', (e) => pickSample(e.target.value));
  $('sample-prev').addEventListener('click', () => step(-1));
  $('sample-next').addEventListener('click', () => step(1));
  $('view-select').addEventListener('change', () => {
    const mode = currentViewMode();
    for (const { nv } of viewer.panels) {
      nv.opts.multiplanarShowRender = mode.showRender;
      nv.setSliceType(mode.sliceType);
    }
  });
}

async function mainReport(folder) {
  $('sample-control').hidden = false;
  $('report').hidden = false;
  document.querySelector('main.layout').classList.add('mode-report');
  $('metrics-title').textContent = 'Evaluation';
  const select = $('sample-select');
  select.replaceChildren(...folder.samples.map((s) => el('option', { value: s.id }, `${s.id} (${s.kind}${s.region ? `, ${s.region}` : ''})`)));
  renderEvalTable(folder.table);
  wireReportControls();
  const wanted = new URL(location.href).searchParams.get('sample');
  await showSample(folder.samples.some((s) => s.id === wanted) ? wanted : folder.samples[0].id);
}

async function main() {
  const probe = document.createElement('canvas').getContext('webgl2');
  if (!probe) {
    fail('WebGL2 is not available in this browser; NiiVue needs it (enable hardware acceleration, or SwiftShader in headless Chromium)');
    return;
  }
  const response = await fetch('/api/folder', { cache: 'no-store' });
  const folder = await response.json();
  if (!response.ok) {
    fail(folder.error ?? `the server answered ${response.status}`);
    return;
  }
  viewer.folder = folder;
  $('folder-name').textContent = folder.name;
  if (folder.layout === 'report') {
    await mainReport(folder);
    return;
  }

  const select = $('pair-select');
  select.replaceChildren(...folder.pairs.map((p) => el('option', { value: p.name }, p.name)));
  $('pair-control').hidden = folder.pairs.length < 2;
  const wanted = new URL(location.href).searchParams.get('pair');
  const first = folder.pairs.some((p) => p.name === wanted) ? wanted : folder.pairs[0].name;
  select.value = first;
  wireControls();
  await showPair(first);
}

main().catch((err) => fail(`the viewer failed: ${err?.message ?? err}`));
