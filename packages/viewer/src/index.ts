/**
 * @llmed/viewer — the NiiVue viewer behind `llmed view`: a small local HTTP server for one output folder
 * (fixed / moving / warped, label maps, det J, metrics), a run folder with eval/pairs/<pair>/, or a report
 * evaluation (each sample's CT beside its prompt, reference and generated text).
 */
export { serveViewer, contentTypeFor, findNiivueBundle, safeSegments, viewerPageDir, type ServeViewerOptions, type ViewerServer } from './server.ts';
export { scanViewerFolder, REQUIRED_VOLUMES, OPTIONAL_VOLUMES, RUN_PAIRS_DIR, RUN_EVAL_DIR, REPORT_SAMPLES_FILE, type ReportSample, type ViewerFolder, type ViewerPair, type VolumeRole } from './folder.ts';
