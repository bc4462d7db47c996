/**
 * The exported field predictor in onnxruntime-node: (moving, fixed) preprocessed images on the prepared
 * grid → displacement field on that grid, in voxels, component-major (channel c along NIfTI axis c).
 *
 * Layout: a volume with dims [I, J, K] stored i-fastest is exactly a (1, 1, K, J, I) tensor, so images go
 * in and the field comes out without copies or transposes. When the manifest has a `resize` block
 * (LLM-Morph runs at half resolution) both images are resized corner-aligned to the network grid and
 * the field is upsampled back with its displacements rescaled by (N − 1)/(n − 1) — the same operations,
 * in the same order, as training's forward pass (resampleTrilinear, resample.ts / upsampleField, warp.ts).
 */
import { LlmedError } from '@llmed/core';
import { resampleTrilinear, upsampleField } from '@llmed/imaging';
import type { OpenedExport } from './manifest.ts';

// onnxruntime-node loads a native addon; import it lazily so that commands which never run a model
// (and tests of the manifest checks) do not pay for it.
export type Ort = typeof import('onnxruntime-node');
let ortModule: Promise<Ort> | undefined;
export async function loadOrt(): Promise<Ort> {
  ortModule ??= import('onnxruntime-node').then((m) => ((m as unknown as { default?: Ort }).default ?? m) as Ort);
  return ortModule;
}

export interface PredictorOptions {
  /** Intra-op threads of the session (default: onnxruntime's choice, all cores). */
  threads?: number;
}

export interface Prediction {
  /** 3 × I·J·K displacement in voxels of the prepared grid. */
  field: Float32Array;
  /** Wall time of the onnxruntime run alone (resizing excluded). */
  inferenceMs: number;
}

export class FieldPredictor {
  private constructor(
    readonly exported: OpenedExport,
    private readonly ort: Ort,
    private readonly session: import('onnxruntime-node').InferenceSession,
  ) {}

  /** Create the onnxruntime session and check that the graph is the one the manifest describes. */
  static async load(exported: OpenedExport, opts: PredictorOptions = {}): Promise<FieldPredictor> {
    const ort = await loadOrt();
    let session: import('onnxruntime-node').InferenceSession;
    try {
      session = await ort.InferenceSession.create(exported.modelFile, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
      });
    } catch (e) {
      throw new LlmedError('checkpoint', `onnxruntime cannot load the model: ${(e as Error).message.split('\n')[0]}`, {
        where: exported.modelFile,
        hint: 'the file is not a valid ONNX model (truncated or corrupted?); export the run again',
        cause: e,
      });
    }
    const predictor = new FieldPredictor(exported, ort, session);
    predictor.checkGraph();
    return predictor;
  }

  /** The graph's inputs and outputs must be the manifest's (names and static shapes). */
  private checkGraph(): void {
    const m = this.exported.manifest;
    const where = this.exported.manifestFile;
    const names = (xs: readonly string[]) => `[${xs.join(', ')}]`;
    if (names(this.session.inputNames) !== names(m.model.inputs.map((t) => t.name)) || names(this.session.outputNames) !== names(m.model.outputs.map((t) => t.name))) {
      throw new LlmedError('checkpoint', `the manifest does not match the model: graph ${names(this.session.inputNames)} -> ${names(this.session.outputNames)}, manifest ${names(m.model.inputs.map((t) => t.name))} -> ${names(m.model.outputs.map((t) => t.name))}`, { where, hint: 'export the run again' });
    }
    const metas = [...(this.session.inputMetadata ?? []), ...(this.session.outputMetadata ?? [])];
    const declared = [...m.model.inputs, ...m.model.outputs];
    metas.forEach((meta, idx) => {
      if (!meta.isTensor) return;
      const shape = (meta as { shape?: readonly (number | string)[] }).shape;
      if (!shape) return;
      const want = declared[idx].shape;
      if (shape.length !== want.length || shape.some((d, c) => typeof d === 'number' && d !== want[c])) {
        throw new LlmedError('checkpoint', `the manifest does not match the model: ${meta.name} is [${shape.join(', ')}] in the graph, [${want.join(', ')}] in the manifest`, { where, hint: 'export the run again' });
      }
    });
  }

  get preparedDims(): [number, number, number] {
    return this.exported.manifest.prepared.shape;
  }

  get networkDims(): [number, number, number] {
    return this.exported.manifest.input.shape;
  }

  /** Predict the field for preprocessed images on the prepared grid. */
  async predict(moving: Float32Array, fixed: Float32Array): Promise<Prediction> {
    const prep = this.preparedDims;
    const net = this.networkDims;
    const n = prep[0] * prep[1] * prep[2];
    for (const [role, img] of [['moving', moving], ['fixed', fixed]] as const) {
      if (img.length !== n) throw new LlmedError('shape', `${role} image has ${img.length} voxels; the model's prepared grid [${prep.join(', ')}] needs ${n}`, { where: this.exported.manifestFile });
    }
    // Trilinear, corner-aligned (align_corners=True): what training's resize_image does.
    const same = net.every((d, c) => d === prep[c]);
    const m = same ? moving : resampleTrilinear(moving, prep, net);
    const f = same ? fixed : resampleTrilinear(fixed, prep, net);
    const tensorShape = [1, 1, net[2], net[1], net[0]];
    const feeds = { moving: new this.ort.Tensor('float32', m, tensorShape), fixed: new this.ort.Tensor('float32', f, tensorShape) };
    const t0 = performance.now();
    const out = await this.session.run(feeds);
    const inferenceMs = performance.now() - t0;
    const fieldNet = out.field.data as Float32Array;
    const field = net.every((d, c) => d === prep[c]) ? fieldNet : upsampleField(fieldNet, net, prep, true);
    return { field, inferenceMs };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
