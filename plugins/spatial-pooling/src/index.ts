/**
 * spatial-pooling — M3D's spatial pooling projector (`spp`, spec §3.2 P1–P2): the visual tokens are put
 * back on their grid (from the encoder's token shape, torch order (K, J, I), the i index fastest along the
 * sequence), average-pooled with kernel = stride = `pool`, flattened in the same order, then
 * Linear(in → out) – GELU – Linear(out → out) (M3D `proj_layer_type='mlp'`, 2 layers).
 *
 *   in  L tokens × C, grid [gi, gj, gk]   out  (gi/p·gj/p·gk/p) tokens × outWidth, grid [gi/p, gj/p, gk/p]
 *
 * Paper sizes: 2048 × 768 on 16×16×8 → 256 × 4096. The grid comes from the encoder, never from a second
 * image-size setting, so the reshape cannot disagree with the patch order (spec §3.11 item 1).
 */
import { definePlugin, fmt3, pluginModule, pythonEntry, requireInput, ShapeMismatch, type Vec3 } from '@llmed/core';

export interface SpatialPoolingOptions { pool: number; pooling: 'avg' | 'max'; outWidth: number; layers: number }

export const descriptor = definePlugin<SpatialPoolingOptions>({
  id: 'spatial-pooling',
  kind: 'Adapter',
  summary: "M3D's spatial pooling projector: tokens → grid, average pool, Linear–GELU–Linear to the LLM's width",
  reference: 'M3D-LaMed spatial_pooling_projector.py (spec §3.2 P1–P2, §3.11 item 1)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_spatial_pooling'),
  options: {
    type: 'object',
    properties: {
      pool: { type: 'integer', minimum: 1, default: 2, description: 'pooling kernel and stride on every grid axis' },
      pooling: { enum: ['avg', 'max'], default: 'avg' },
      outWidth: { type: 'integer', minimum: 1, default: 4096, description: "token width after the MLP: the LLM's hidden size" },
      layers: { type: 'integer', minimum: 1, maximum: 2, default: 2, description: '1: one Linear; 2: Linear–GELU–Linear (M3D)' },
    },
  },
  shape(inputs, o) {
    const t = requireInput(inputs, 'tokens', 'spatial-pooling');
    const cells = t.grid[0] * t.grid[1] * t.grid[2];
    if (cells !== t.length) throw new ShapeMismatch(`${t.length} tokens do not lie on their grid ${fmt3(t.grid)} (${cells} cells); use the encoder's patch tokens only`, { input: 'tokens' });
    const axes = ['i', 'j', 'k'];
    const bad = t.grid.findIndex((n) => n % o.pool !== 0);
    if (bad >= 0) throw new ShapeMismatch(`token grid ${fmt3(t.grid)} is not divisible by pool ${o.pool} along ${axes[bad]} (${t.grid[bad]} by ${o.pool})`, { option: 'pool', input: 'tokens' });
    const grid = t.grid.map((n) => n / o.pool) as Vec3;
    return { type: 'tokens', length: grid[0] * grid[1] * grid[2], width: o.outWidth, grid };
  },
  example: {
    options: { pool: 2, outWidth: 12 },
    inputs: { tokens: { type: 'tokens', length: 32, width: 8, grid: [4, 4, 2] } },
  },
});

export default pluginModule(descriptor);
