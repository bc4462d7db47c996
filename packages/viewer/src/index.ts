/**
 * @llmed/viewer — the NiiVue viewer behind `llmed view`: a small local HTTP server for one output folder
 * (fixed / moving / warped, label maps, det J, metrics) or a run folder with eval/pairs/<pair>/.
 */
export { serveViewer, contentTypeFor, findNiivueBundle, safeSegments, viewerPageDir, type ServeViewerOptions, type ViewerServer } from './server.ts';
export { scanViewerFolder, REQUIRED_VOLUMES, OPTIONAL_VOLUMES, RUN_PAIRS_DIR, type ViewerFolder, type ViewerPair, type VolumeRole } from './folder.ts';
