/**
 * multiscale — LLaMA-Reg's non-U-shaped multi-scale decoder (also LLM-Morph's). Stage 1 fuses the coarsest
 * adapter map with both encoder skips at 1/8; every later stage s fuses [moving skip, fixed skip, upsampled
 * previous features, adapter map s, upsampled previous field, moving image warped by it] and predicts a
 * residual field: φ_s = up(φ_{s-1}) + Δ_s. Upsampling a field by 2 multiplies its displacements by 2
 * (`rescaleUpsampledField`, on by default; off reproduces the released code's bug, spec §1.12 item 4).
 * Fields are displacements in voxels of their own grid, channel c along NIfTI axis c; warping is
 * trilinear with align_corners=True. `fieldScale` 2 ends the stages at 1/2 (stage adapters with one stage fewer)
 * and upsamples the 1/2 field to full resolution as the last field (VoxelMorph's `int_downsize`): the decoder
 * then has no full-resolution stage, the costliest convolutions of the model, and the field is as smooth as a
 * 1/2 grid allows.
 *
 *   in  pyramid (full … 1/16), stages (1/8, 1/4, 1/2, 1)      out  fields at 1/4, 1/2, 1 (3 channels each)
 *   fieldScale 2: stages (1/8, 1/4, 1/2)                       out  fields at 1/4, 1/2, 1 (= up(1/2 field))
 */
import { convInitOption, definePlugin, type ConvInit, pluginModule, pythonEntry, requireInput, ShapeMismatch, type FieldsShape, type ShapeInputs } from '@llmed/core';

export interface MultiscaleOptions { rescaleUpsampledField: boolean; flowHidden: number; negativeSlope: number; init: ConvInit; fieldScale: number }

/** Shared by `cascade`: checks the stage maps line up with the pyramid and lists the field scales. */
export function multiscaleFields(inputs: ShapeInputs, pluginId: string, fieldScale = 1): FieldsShape['fields'] {
  const image = requireInput(inputs, 'image', pluginId);
  const p = requireInput(inputs, 'pyramid', pluginId);
  const st = requireInput(inputs, 'stages', pluginId);
  if (st.stages.length < 2) throw new ShapeMismatch(`needs at least 2 stages from the stage adapters, got ${st.stages.length}`, { input: 'stages' });
  for (const s of st.stages) {
    const lvl = p.levels.find((l) => l.scale === s.scale);
    if (!lvl) throw new ShapeMismatch(`stage map at 1/${s.scale} has no encoder level at the same scale`, { input: 'stages' });
    if (lvl.spatial.some((n, i) => n !== s.spatial[i])) {
      throw new ShapeMismatch(`stage map at 1/${s.scale} is ${s.spatial.join('×')} but the encoder level is ${lvl.spatial.join('×')}`, { input: 'stages' });
    }
  }
  const scales = st.stages.map((s) => s.scale);
  if (scales.some((s, k) => k > 0 && scales[k - 1] !== 2 * s)) {
    throw new ShapeMismatch(`stage scales must halve from stage to stage (coarse → fine); got ${scales.map((s) => `1/${s}`).join(', ')}`, { input: 'stages' });
  }
  const finest = st.stages.at(-1)!.scale;
  if (finest !== fieldScale) {
    throw new ShapeMismatch(
      fieldScale === 1
        ? `the finest stage is 1/${finest}; the decoder needs one at full resolution (or fieldScale: ${finest}, which predicts the finest field at 1/${finest} and upsamples it)`
        : `fieldScale ${fieldScale} needs the stages to end at 1/${fieldScale}; they end at 1/${finest} (the stage adapters' stages option sets how far they go)`,
      { input: 'stages' },
    );
  }
  const fields = st.stages.slice(1).map((s) => ({ scale: s.scale, spatial: s.spatial }));
  return fieldScale > 1 ? [...fields, { scale: 1, spatial: image.spatial }] : fields;
}

export const decoderOptionsSchema = {
  rescaleUpsampledField: { type: 'boolean', default: true },
  flowHidden: { type: 'integer', minimum: 1, default: 16 },
  negativeSlope: { type: 'number', minimum: 0, default: 0.2 },
  init: convInitOption,
  fieldScale: {
    enum: [1, 2, 4],
    default: 1,
    description:
      'the finest predicted field is at 1/fieldScale (the stages end there) and is upsampled, displacements rescaled, to the full-resolution field; 1 is the paper\'s decoder (a residual at full resolution)',
  },
};

const examplePyramid = [1, 2, 4, 8, 16].map((s, i) => ({ scale: s, channels: [2, 4, 4, 8, 8][i], spatial: [16 / s, 32 / s, 32 / s] as [number, number, number] }));
export const decoderExampleInputs: ShapeInputs = {
  image: { type: 'volume', channels: 1, spatial: [16, 32, 32] },
  pyramid: { type: 'pyramid', levels: examplePyramid },
  stages: { type: 'stages', stages: [8, 4, 2, 1].map((s, k) => ({ scale: s, channels: 8 / 2 ** k, spatial: [16 / s, 32 / s, 32 / s] as [number, number, number] })) },
};

export const descriptor = definePlugin<MultiscaleOptions>({
  id: 'multiscale',
  kind: 'Decoder',
  summary: 'non-U-shaped multi-scale decoder, residual fields at 1/4, 1/2, full',
  reference: 'LLaMA-Reg §2.2 Eqs. 3-6 (spec §1.2); LLM-Morph §2.3 (spec §2.5)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_multiscale'),
  options: { type: 'object', properties: decoderOptionsSchema },
  shape(inputs, o) {
    return { type: 'fields', fields: multiscaleFields(inputs, 'multiscale', o.fieldScale), steps: 1 };
  },
  example: { options: { flowHidden: 4 }, inputs: decoderExampleInputs },
});

export default pluginModule(descriptor);
