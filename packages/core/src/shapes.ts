/**
 * Shapes that flow between plugins during composition. They are checked in TypeScript, before any Python
 * starts, so a model that cannot be built fails with a message naming the config path and both numbers.
 *
 * Spatial triples are in NIfTI axis order (i, j, k) — the order of `dims` in the header; torch sees the
 * same volume as (N, C, K, J, I).
 */
export type Vec3 = [number, number, number];

/** An image: channels × spatial. */
export interface VolumeShape { type: 'volume'; channels: number; spatial: Vec3 }

/** One level of an encoder pyramid; `scale` is the downsampling factor (1 = full resolution). */
export interface FeatureLevel { scale: number; channels: number; spatial: Vec3 }

/** Multi-level features of each image (moving and fixed streams have the same shapes). Finest first. */
export interface PyramidShape { type: 'pyramid'; levels: FeatureLevel[] }

/** A token sequence: `length` tokens of `width` features, laid out on `grid` (raster order, last axis fastest). */
export interface TokenShape { type: 'tokens'; length: number; width: number; grid: Vec3 }

/** Feature maps the stage adapters hand to the decoder, coarsest first (1/8, 1/4, 1/2, 1 for LLaMA-Reg). */
export interface StagesShape { type: 'stages'; stages: FeatureLevel[] }

/** Displacement fields a decoder predicts (3 channels each), coarsest first. */
export interface FieldsShape { type: 'fields'; fields: { scale: number; spatial: Vec3 }[]; steps: number }

export type Shape = VolumeShape | PyramidShape | TokenShape | StagesShape | FieldsShape;

/** Named inputs a shape rule receives: `image` for encoders, `pyramid` + `tokens` for adapters, ... */
export type ShapeInputs = Partial<{ image: VolumeShape; pyramid: PyramidShape; tokens: TokenShape; stages: StagesShape }>;

/**
 * Thrown by a shape rule. `option` names the offending option (relative to the plugin's `with`), so the
 * composer can point at `model.block[1].with.hiddenSize`; `input` names the offending input.
 */
export class ShapeMismatch extends Error {
  readonly option?: string;
  readonly input?: keyof ShapeInputs;
  constructor(message: string, where: { option?: string; input?: keyof ShapeInputs } = {}) {
    super(message);
    this.name = 'ShapeMismatch';
    this.option = where.option;
    this.input = where.input;
  }
}

export const fmt3 = (v: readonly number[]) => v.join('×');

export function requireInput<K extends keyof ShapeInputs>(inputs: ShapeInputs, key: K, pluginId: string): NonNullable<ShapeInputs[K]> {
  const v = inputs[key];
  if (!v) throw new ShapeMismatch(`${pluginId} needs a '${key}' input, and none reaches it at this position`, { input: key });
  return v as NonNullable<ShapeInputs[K]>;
}

/**
 * The levels of an image pyramid with `channels[i]` channels at scale 2^i (full resolution first): the
 * shape rule of every pyramid encoder. Each level must divide the input exactly (a shape error naming
 * the `channels` option otherwise).
 */
export function pyramidShape(image: VolumeShape, channels: readonly number[]): PyramidShape {
  const levels: FeatureLevel[] = channels.map((c, i) => {
    const scale = 2 ** i;
    const spatial = image.spatial.map((n) => n / scale) as Vec3;
    if (spatial.some((n) => !Number.isInteger(n))) {
      throw new ShapeMismatch(`input ${fmt3(image.spatial)} is not divisible by ${scale}, which level ${i + 1} of ${channels.length} needs`, { option: 'channels', input: 'image' });
    }
    return { scale, channels: c, spatial };
  });
  return { type: 'pyramid', levels };
}
