/**
 * `serveViewer` — a small node:http server (no framework) for the NiiVue page and the NIfTI files of
 * one output or run folder, or of a report evaluation (samples beside their CT).
 *
 * Routes:
 *   GET /                 the page (src/page/index.html), plain ESM, no build step
 *   GET /<page file>      app.js, style.css, ... from src/page/ (flat: no sub-paths)
 *   GET /vendor/niivue.js NiiVue's self-contained ESM bundle from node_modules (the machine may be offline)
 *   GET /api/folder       JSON: the pairs, or the report samples, in the folder (rescanned per request, see folder.ts)
 *   GET /files/<path>     a file inside the served folder
 *
 * Safety: the server binds to 127.0.0.1 unless told otherwise; only GET and HEAD; any `..` segment,
 * absolute path, backslash or NUL (also percent-encoded) is refused with 403 before the file system is
 * touched, and a symlink resolving outside the folder is refused too; folders are never listed (404).
 */
import { createReadStream, realpathSync, statSync, type Stats } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LlmedError } from '@llmed/core/errors';
import { scanViewerFolder, type ViewerFolder } from './folder.ts';

export interface ServeViewerOptions {
  /** Output folder of `llmed register`, a run folder with eval/pairs/<pair>/, or a report evaluation (or its run folder). */
  folder: string;
  /** TCP port; 0 (default) lets the OS choose a free one. */
  port?: number;
  /** Interface to bind; default 127.0.0.1 (the files are a patient's images: not on the network by default). */
  host?: string;
}

export interface ViewerServer {
  /** Address of the page, e.g. http://127.0.0.1:41234/ */
  url: string;
  /** The port actually bound (useful with port 0). */
  port: number;
  /** The folder as scanned at start (the page rescans on each load). */
  folder: ViewerFolder;
  /** Stop listening and drop open keep-alive connections. */
  close(): Promise<void>;
}

const PAGE_DIR = fileURLToPath(new URL('./page/', import.meta.url));

/** Content types by file suffix, longest suffix first so `.nii.gz` wins over `.gz`. */
const CONTENT_TYPES: ReadonlyArray<readonly [string, string]> = [
  ['.nii.gz', 'application/gzip'],
  ['.nii', 'application/octet-stream'],
  ['.gz', 'application/gzip'],
  ['.html', 'text/html; charset=utf-8'],
  ['.js', 'text/javascript; charset=utf-8'],
  ['.mjs', 'text/javascript; charset=utf-8'],
  ['.css', 'text/css; charset=utf-8'],
  ['.json', 'application/json; charset=utf-8'],
  ['.jsonl', 'application/x-ndjson; charset=utf-8'],
  ['.txt', 'text/plain; charset=utf-8'],
  ['.log', 'text/plain; charset=utf-8'],
  ['.csv', 'text/csv; charset=utf-8'],
  ['.md', 'text/markdown; charset=utf-8'],
  ['.png', 'image/png'],
  ['.jpg', 'image/jpeg'],
  ['.jpeg', 'image/jpeg'],
  ['.svg', 'image/svg+xml'],
  ['.onnx', 'application/octet-stream'],
];

export function contentTypeFor(path: string): string {
  const lower = path.toLowerCase();
  return CONTENT_TYPES.find(([suffix]) => lower.endsWith(suffix))?.[1] ?? 'application/octet-stream';
}

/**
 * Find NiiVue's ESM bundle. Its package exports only `build/`, whose modules import bare specifiers a
 * browser cannot resolve without an import map; `dist/index.js` is the same library bundled into one
 * file with no imports. Walk up the node_modules folders as Node's resolver would (npm may hoist it).
 */
export function findNiivueBundle(from = dirname(PAGE_DIR)): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', '@niivue', 'niivue', 'dist', 'index.js');
    if (isFile(candidate)) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new LlmedError('data', "NiiVue's browser bundle (@niivue/niivue/dist/index.js) was not found", {
    where: from,
    hint: 'run npm install at the repository root',
  });
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Split a request path into decoded segments, or return null when any segment is unsafe: `..` or `.`,
 * an empty segment (`//` — an absolute path after the route prefix), or one holding a slash, backslash,
 * NUL or a drive letter after decoding (`%2e%2e`, `%2f`, `%5c`, `C:`).
 */
export function safeSegments(rawPath: string): string[] | null {
  if (rawPath === '') return [];
  const segments: string[] = [];
  for (const raw of rawPath.split('/')) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return null;
    }
    if (seg === '' || seg === '.' || seg === '..' || /[/\\\0]/.test(seg) || /^[a-zA-Z]:/.test(seg)) return null;
    segments.push(seg);
  }
  return segments;
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function sendFile(req: IncomingMessage, res: ServerResponse, path: string, stats: Stats): void {
  res.writeHead(200, {
    'Content-Type': contentTypeFor(path),
    'Content-Length': stats.size,
    'X-Content-Type-Options': 'nosniff',
    // Results are rewritten by new runs under the same names: never show a stale volume.
    'Cache-Control': 'no-store',
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = createReadStream(path);
  stream.on('error', () => res.destroy());
  stream.pipe(res);
}

/** Serve a regular file under `root`; 403 when its real path leaves `root`, 404 for folders and missing files. */
function serveInside(req: IncomingMessage, res: ServerResponse, root: string, segments: string[]): void {
  const target = join(root, ...segments);
  const rel = relative(root, target);
  if (rel.startsWith('..') || isAbsolute(rel)) return send(res, 403, 'forbidden: path leaves the served folder\n');
  let real: string;
  let stats: Stats;
  try {
    real = realpathSync(target);
    stats = statSync(real);
  } catch {
    return send(res, 404, 'not found\n');
  }
  const realRel = relative(realpathSync(root), real);
  if (realRel.startsWith('..') || isAbsolute(realRel)) return send(res, 403, 'forbidden: link leaves the served folder\n');
  if (!stats.isFile()) return send(res, 404, 'not found\n'); // no directory listing
  sendFile(req, res, real, stats);
}

/**
 * Start the viewer on `folder`. Throws `LlmedError('data')` naming the folder and the missing volumes
 * before anything listens, so `llmed view` fails with one clear line.
 */
export async function serveViewer(opts: ServeViewerOptions): Promise<ViewerServer> {
  const folder = scanViewerFolder(opts.folder);
  const root = folder.root;
  const niivueBundle = findNiivueBundle();
  const host = opts.host ?? '127.0.0.1';

  const server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'method not allowed\n');
    }
    // The raw request target, not a WHATWG URL: `new URL` would silently resolve `..` away.
    const rawPath = (req.url ?? '/').split(/[?#]/, 1)[0];
    if (!rawPath.startsWith('/')) return send(res, 400, 'bad request\n');
    const segments = safeSegments(rawPath.slice(1).replace(/\/$/, ''));
    if (segments === null) return send(res, 403, 'forbidden: unsafe path\n');

    if (segments.length === 0) return serveInside(req, res, PAGE_DIR, ['index.html']);
    const [head, ...rest] = segments;
    if (head === 'files') {
      if (rest.length === 0) return send(res, 404, 'not found\n');
      return serveInside(req, res, root, rest);
    }
    if (head === 'api' && rest.length === 1 && rest[0] === 'folder') {
      try {
        const scan = scanViewerFolder(root);
        const name = scan.root.split(/[\\/]/).pop();
        const body = scan.layout === 'report'
          ? { name, layout: scan.layout, pairs: scan.pairs, samples: scan.samples, evalDir: scan.evalDir, table: scan.table }
          : { name, layout: scan.layout, pairs: scan.pairs };
        return send(res, 200, JSON.stringify(body), 'application/json; charset=utf-8');
      } catch (e) {
        // The folder changed under a running viewer (deleted, emptied): tell the page why.
        return send(res, 404, JSON.stringify({ error: e instanceof LlmedError ? e.format() : String(e) }), 'application/json; charset=utf-8');
      }
    }
    if (head === 'vendor' && rest.length === 1 && rest[0] === 'niivue.js') {
      return sendFile(req, res, niivueBundle, statSync(niivueBundle));
    }
    if (head === 'favicon.ico') {
      res.writeHead(204);
      return res.end();
    }
    if (rest.length === 0) return serveInside(req, res, PAGE_DIR, [head]);
    return send(res, 404, 'not found\n');
  });

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      reject(
        e.code === 'EADDRINUSE' || e.code === 'EACCES'
          ? new LlmedError('usage', `cannot listen on ${host}:${opts.port ?? 0} (${e.code})`, { hint: 'choose another --port, or 0 for any free port', cause: e })
          : e,
      );
    });
    server.listen(opts.port ?? 0, host, () => resolveListen());
  });

  const port = (server.address() as AddressInfo).port;
  // A wildcard bind is reachable on loopback; an IPv6 literal needs brackets in a URL.
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}/`,
    port,
    folder,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        // A browser keeps idle keep-alive sockets open; without this close() would wait for them.
        server.closeAllConnections();
      }),
  };
}

/** Absolute path of the page folder (for tests and tooling). */
export const viewerPageDir = resolve(PAGE_DIR);
