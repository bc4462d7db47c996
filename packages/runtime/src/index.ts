/**
 * @llmed/runtime — inference without Python: exported models (manifest + onnxruntime-node), native
 * registration of a pair, batch evaluation with Metric plugins, and the evaluation pictures.
 */
export * from './pictures/index.ts';
export * from './manifest.ts';
export * from './predictor.ts';
export * from './score.ts';
export * from './prealign.ts';
export * from './register.ts';
export * from './evaluate.ts';
export * from './text/tokenizer.ts';
export * from './text/decoder.ts';
export * from './text/generate.ts';
export * from './text/report.ts';
export * from './text/evaluate-report.ts';
