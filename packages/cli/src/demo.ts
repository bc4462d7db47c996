/**
 * `llmed demo` (what `npm run demo` runs): prepares the embedded demo data from real anatomy (Colin27 +
 * AAL from Debian's mricron-data, under synthetic smooth deformations), composes and checks its model,
 * trains it through the Python bridge, exports the trained field predictor to ONNX (parity-checked),
 * evaluates it natively in Node on the held-out test pairs (table, box plot, pictures), and says what
 * to run next (register a pair of your own, open the viewer).
 */
import { existsSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describeSpec, isLlmedError } from '@llmed/core';
import { flagString, type ParsedArgs } from './args.ts';
import { loadExperiment } from './context.ts';
import { runPrepare } from './data.ts';
import { evaluateRun } from './evaluate.ts';
import { describeExport, exportRun } from './export.ts';
import { checkRequirements, trainExperiment } from './train.ts';

export async function demo(args: ParsedArgs): Promise<number> {
  const t0 = Date.now();
  const ex = await loadExperiment('demo');
  console.log(`llmed demo — ${ex.config.method}: ${ex.config.data.title}`);
  console.log('1/5 model: composed and shape-checked');
  for (const line of describeSpec(ex.spec)) console.log(`    ${line}`);
  console.log('2/5 data');
  await runPrepare(ex.ws.root, ex.name, ex.config);
  console.log('3/5 training (PyTorch through the Python bridge)');
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
  const rel = (p: string) => relative(process.cwd(), p) || p;
  console.log('4/5 export (ONNX, checked against torch)');
  const exported = await exportRun(runDir);
  for (const line of describeExport(exported)) console.log(`    ${line}`);
  console.log('5/5 evaluation on the held-out test pairs (onnxruntime-node, no Python)');
  const evaluated = await evaluateRun(runDir, {});
  console.log(evaluated.markdown);
  console.log(`demo finished in ${((Date.now() - t0) / 1000).toFixed(0)} s${evaluated.verdict ? ` — ${evaluated.verdict}` : ''}`);
  console.log(`  run folder:   ${rel(runDir)}`);
  console.log(`  evaluation:   ${rel(evaluated.out)} (table.md, dice_per_label.png, pictures/)`);
  console.log(`  view it:      npm run llmed -- view ${rel(runDir)}`);
  const brains = resolve(ex.ws.root, '..', 'shared', 'data', 'brain');
  const a = join(brains, 'image_A_160x192x144'), b = join(brains, 'image_B_160x192x144');
  if (existsSync(`${a}.nii.gz`)) {
    console.log(`  register a pair of real brains (OASIS-derived; no Python):
    npm run llmed -- register --model ${rel(join(runDir, 'export'))} --moving ${rel(`${a}.nii.gz`)} --fixed ${rel(`${b}.nii.gz`)} --moving-labels ${rel(`${a}_seg.nii.gz`)} --fixed-labels ${rel(`${b}_seg.nii.gz`)} --out registered-brains`);
  } else {
    console.log(`  register your own pair (no Python):
    npm run llmed -- register --model ${rel(join(runDir, 'export'))} --moving m.nii.gz --fixed f.nii.gz [--moving-labels ml.nii.gz --fixed-labels fl.nii.gz]`);
  }
  return 0;
}
