/**
 * cascade — LLaMA-Reg's cascaded decoders: n steps sharing the encoder and the frozen LLM layers; each
 * step after the first has its own position embedding, block adapters, stage adapters and decoder, fuses
 * the previous step's features, and adds its residual to the previous step's field at every scale
 * (superposition, not composition). Trained step by step (earlier steps frozen as in the released code)
 * or jointly, per `train.cascade`.
 *
 *   in  as multiscale      out  fields at 1/4, 1/2, 1 (sum over steps)
 */
import { definePlugin, pluginModule, pythonEntry, type ConvInit } from '@llmed/core';
import { decoderExampleInputs, decoderOptionsSchema, multiscaleFields } from '@llmed/plugin-multiscale';

export interface CascadeOptions { steps: number; rescaleUpsampledField: boolean; flowHidden: number; negativeSlope: number; init: ConvInit; fieldScale: number }

export const descriptor = definePlugin<CascadeOptions>({
  id: 'cascade',
  kind: 'Decoder',
  summary: 'n cascaded multi-scale decoders sharing encoder and LLM layers, fields superposed per scale',
  reference: 'LLaMA-Reg §2.3 (spec §1.4, §1.6)',
  python: pythonEntry(import.meta.url, '../python', 'llmed_cascade'),
  options: { type: 'object', properties: { steps: { type: 'integer', minimum: 1, default: 3 }, ...decoderOptionsSchema } },
  shape(inputs, o) {
    return { type: 'fields', fields: multiscaleFields(inputs, 'cascade', o.fieldScale), steps: o.steps };
  },
  example: { options: { steps: 2, flowHidden: 4 }, inputs: decoderExampleInputs },
});

export default pluginModule(descriptor);
