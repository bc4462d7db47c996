/**
 * @llmed/reports — report-generation data: loaders (AMOS-MM, M3D-Cap / M3D-VQA, CT-RATE), the CT
 * preprocessing of M3D and Merlin, and the report-proxy stand-in (generator, fact grammar and parser,
 * fact-f1, multiple-choice questions, leakage check). Formats: docs/report-datasets.md.
 */
export * from './json.ts';
export * from './csv.ts';
export * from './amos.ts';
export * from './m3d.ts';
export * from './ctrate.ts';
export * from './preprocess.ts';
export * from './standin/anatomy.ts';
export * from './standin/facts.ts';
export * from './standin/mcq.ts';
export * from './standin/rng.ts';
export * from './standin/synth.ts';
export * from './standin/generate.ts';
export * from './standin/read.ts';
