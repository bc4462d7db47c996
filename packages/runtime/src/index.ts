/**
 * @llmed/runtime — inference-time pieces that need no Python: evaluation pictures (and, as they land,
 * ONNX registration of a pair and batch evaluation).
 */
export * from './pictures/index.ts';
