/**
 * `llmed demo` (what `npm run demo` runs): prepares the embedded demo data from real anatomy (Colin27 +
 * AAL from Debian's mricron-data, under synthetic smooth deformations), composes and checks its model,
 * trains it when the bridge and its checkpoint are available, and says what it did.
 */
import { relative } from 'node:path';
import { describeSpec, isLlmedError } from '@llmed/core';
import { flagString, type ParsedArgs } from './args.ts';
import { loadExperiment } from './context.ts';
import { runPrepare } from './data.ts';
import { checkRequirements, trainExperiment } from './train.ts';

export async function demo(args: ParsedArgs): Promise<number> {
  const t0 = Date.now();
  const ex = await loadExperiment('demo');
  console.log(`llmed demo — ${ex.config.method}: ${ex.config.data.title}`);
  console.log('1/3 model: composed and shape-checked');
  for (const line of describeSpec(ex.spec)) console.log(`    ${line}`);
  console.log('2/3 data');
  await runPrepare(ex.ws.root, ex.name, ex.config);
  console.log('3/3 training');
  try {
    checkRequirements(ex);
  } catch (e) {
    if (isLlmedError(e)) {
      console.log(`    cannot train yet: ${e.message}`);
      console.log('    run `npm run setup` to fetch and convert the demo checkpoint');
      return 1;
    }
    throw e;
  }
  const runDir = await trainExperiment(ex, { device: flagString(args, 'device') as 'auto' | 'cpu' | 'cuda' | undefined });
  console.log(`\ndemo finished in ${((Date.now() - t0) / 1000).toFixed(0)} s; run folder: ${relative(process.cwd(), runDir) || runDir}`);
  console.log('not built yet: ONNX export, native registration, evaluation pictures and the viewer (the next issue)');
  return 0;
}
