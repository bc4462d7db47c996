/** `llmed view <run, output or report evaluation folder>`: serve the NiiVue viewer on localhost until Ctrl-C. */
import { resolve } from 'node:path';
import { LlmedError } from '@llmed/core';
import { flagNumber, type ParsedArgs } from './args.ts';

export async function view(args: ParsedArgs): Promise<number> {
  const folder = args.positionals[0];
  if (!folder) throw new LlmedError('usage', 'view needs a run folder, a registration output folder or a report evaluation folder', { hint: 'llmed view runs/demo/<timestamp>' });
  const { serveViewer } = await import('@llmed/viewer');
  const server = await serveViewer({ folder: resolve(folder), port: flagNumber(args, 'port') ?? 0 });
  const n = server.folder.layout === 'report' ? server.folder.samples?.length ?? 0 : server.folder.pairs.length;
  const what = server.folder.layout === 'report' ? 'report sample' : 'pair';
  console.log(`viewer: ${server.url}  (${n} ${what}${n === 1 ? '' : 's'}; Ctrl-C to stop)`);
  await new Promise<void>((done) => {
    const stop = () => { void server.close().then(done); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
