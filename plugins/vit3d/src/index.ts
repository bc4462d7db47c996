/**
 * vit3d — M3D-CLIP's 3-D vision transformer (spec §3.2): non-overlapping patches (4×16×16 in torch order
 * K×J×I) flattened as (p_k p_j p_i c) → Linear → + learnable position embedding; a learnable CLS token in
 * front; pre-LN blocks (self-attention whose fused qkv has no bias, GELU MLP); final LayerNorm; the
 * last layer's patch tokens (CLS dropped) are the output.
 *
 *   in  1-channel volume I×J×K (torch (N,1,K,J,I), values in [0,1])
 *   out (K/pk·J/pj·I/pi) tokens × width, grid [I/pi, J/pj, K/pk], the i patch index fastest
 *
 * Paper sizes: input [256, 256, 32] (M3D's 32×256×256), patch [16, 16, 4] → 2048 tokens × 768 on a
 * 16×16×8 grid. `weights` loads M3D-CLIP's vision tower (its state-dict names follow MONAI 1.3's
 * ViT; mapped onto this module's, strictly) from a safetensors file or a weights-only torch file.
 */
import { definePlugin, fmt3, pluginModule, pythonEntry, requireInput, ShapeMismatch, type Vec3 } from '@llmed/core';
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

export interface Vit3dOptions {
  patch: Vec3; width: number; depth: number; heads: number; mlpWidth: number; qkvBias: boolean;
  cls: boolean; select: 'patch' | 'cls_patch'; weights: string | null; trainable: boolean; dropout: number;
}

export const descriptor = definePlugin<Vit3dOptions>({
  id: 'vit3d',
  kind: 'Encoder',
  summary: 'M3D-CLIP ViT3D: 3-D patch embedding + pre-LN transformer → visual tokens (last layer, patch tokens)',
  reference: 'M3D-LaMed / M3D-CLIP vision tower (spec §3.2 V1–V5)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_vit3d'),
  options: {
    type: 'object',
    properties: {
      patch: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 3, maxItems: 3, default: [16, 16, 4], description: 'patch size in NIfTI axis order (i, j, k); M3D 4×16×16 in torch order' },
      width: { type: 'integer', minimum: 1, default: 768 },
      depth: { type: 'integer', minimum: 1, default: 12 },
      heads: { type: 'integer', minimum: 1, default: 12 },
      mlpWidth: { type: 'integer', minimum: 1, default: 3072 },
      qkvBias: { type: 'boolean', default: false },
      cls: { type: 'boolean', default: true, description: 'prepend a learnable CLS token (M3D classification=True); dropped from the output by select "patch"' },
      select: { enum: ['patch', 'cls_patch'], default: 'patch' },
      weights: { anyOf: [{ type: 'null' }, { type: 'string', minLength: 1 }], default: null, description: 'M3D-CLIP vision weights (safetensors, or a torch file read weights-only), relative to the workspace root' },
      trainable: { type: 'boolean', default: true, description: 'the paper trains the ViT fully; false freezes it (features may then be cached)' },
      dropout: { type: 'number', minimum: 0, maximum: 1, default: 0 },
    },
  },
  shape(inputs, o) {
    const img = requireInput(inputs, 'image', 'vit3d');
    if (img.channels !== 1) throw new ShapeMismatch(`vit3d takes 1-channel CT volumes, not ${img.channels} channels`, { input: 'image' });
    if (o.width % o.heads !== 0) throw new ShapeMismatch(`width ${o.width} is not divisible by ${o.heads} heads`, { option: 'heads' });
    const axes = ['i', 'j', 'k'];
    const bad = img.spatial.findIndex((n, a) => n % o.patch[a] !== 0);
    if (bad >= 0) throw new ShapeMismatch(`input ${fmt3(img.spatial)} is not divisible by patch ${fmt3(o.patch)} along ${axes[bad]} (${img.spatial[bad]} by ${o.patch[bad]})`, { option: 'patch', input: 'image' });
    const grid = img.spatial.map((n, a) => n / o.patch[a]) as Vec3;
    return { type: 'tokens', length: grid[0] * grid[1] * grid[2] + (o.select === 'cls_patch' && o.cls ? 1 : 0), width: o.width, grid };
  },
  missing(o, ctx) {
    if (!o.weights) return undefined;
    const file = isAbsolute(o.weights) ? o.weights : resolve(ctx.workspaceRoot, o.weights);
    if (existsSync(file)) return undefined;
    return `M3D-CLIP vision weights ${file} are missing: put the vision tower of M3D-CLIP (GoodBaiBai88/M3D-CLIP, its ViT3D tensors as safetensors or pretrained_ViT.bin) there, or set "weights": null to train the ViT from scratch.`;
  },
  example: {
    options: { patch: [4, 4, 2], width: 16, depth: 1, heads: 2, mlpWidth: 32 },
    inputs: { image: { type: 'volume', channels: 1, spatial: [8, 8, 4] } },
  },
});

export default pluginModule(descriptor);
