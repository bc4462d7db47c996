/**
 * `llmed` — the command line. Every failure a user can cause is an LlmedError: one line naming the file or
 * config path and the problem, a hint, a non-zero exit; the stack only with --debug.
 */
import { isLlmedError, LlmedError } from '@llmed/core';
import { allowFlags, parseArgs, type ParsedArgs } from './args.ts';
import { configCheck } from './config-check.ts';
import { dataInspect, dataPrepare } from './data.ts';
import { dataGenerate } from './generate.ts';
import { demo } from './demo.ts';
import { evaluateCommand } from './evaluate.ts';
import { exportCommand } from './export.ts';
import { pluginsList } from './plugins.ts';
import { pluginsNew } from './plugins-new.ts';
import { registerCommand } from './register.ts';
import { askCommand, reportCommand } from './report.ts';
import { train } from './train.ts';
import { view } from './view.ts';

const HELP = `llmed — medical image registration and report generation with LLM backbones

usage: llmed <command> [options]

  plugins list [--json] [--kind K]     the plugin registry (Encoder, LLMBackbone, Adapter, Decoder, Loss, Metric)
  plugins new <id> --kind K            write a plugin folder (package.json, src/index.ts, python/, tests/)
                                       into plugins/<id> [--out D] and list it in workspace.json
  config check <experiment|config>     validate a config and compose its model with shape checks [--json [--portable]]
  data inspect <file.nii[.gz]>         header, dims, spacing, orientation, intensities, labels [--json]
  data prepare <experiment>            prepare the dataset into the training cache [--force]
  data generate report-proxy           the report-generation stand-in: crops of the one CT with synthetic
                                       findings, templated reports, 4-option questions, hashed split manifest
                                       [--out D (runs/data/report-proxy)] [--count N] [--seed S] [--force]
                                       [--crop 96x84x112] [--shape 48x42x56] [--block-gap V] [--held-out k:organ,..]
                                       [--data-dir ../shared/data] [--json]; report-proxy-brain: the
                                       subject-disjoint brain version
  train <experiment>                   train (PyTorch through the Python bridge) [--device auto|cpu|cuda]
                                       [--resume <run>] [--iterations N] [--batch-size N (per process)] [--run-dir D]
                                       [--threads N (torch's intra-op threads)]
                                       on several processes / GPUs (torchrun + DDP): --nproc-per-node N
                                       [--nnodes M --node-rank R --master-addr A --master-port P]
  export <run|experiment>              ONNX export of a run's field predictor + manifest, parity-checked
                                       [--tag best|last] [--out D] [--threads N] [--json]
  register --moving m.nii.gz --fixed f.nii.gz --model <export>
                                       native registration (onnxruntime-node, no Python): warped image and
                                       labels, field (DISPVECT, mm), det J, metrics.json
                                       on the fixed scan's grid; the scans are related through their affines
                                       (world space) [--box-to-box: stretch box onto box, for dummy headers]
                                       [--affine: affine pre-alignment with elastix (WebAssembly) first]
                                       [--moving-labels l --fixed-labels l] [--labels 2,3,4 | lut.txt]
                                       [--out D] [--metrics ids] [--field field.nii.gz (apply a saved field)]
                                       [--threads N] [--json]
  evaluate <experiment|run>            the protocol's test pairs: table.md/json, box plot, pictures, viewer
                                       folders in <run>/eval [--pairs N] [--pictures N] [--metrics ids]
                                       [--split test|val] [--threads N] [--out D]
  report --model <export> --image ct.nii.gz
                                       generate the findings of a CT natively (onnxruntime-node, no Python),
                                       streamed; writes report.json [--region abdomen|chest|pelvis]
                                       [--prompt text] [--strategy greedy|sample --temperature T --top-p P
                                       --seed S] [--repetition-penalty R] [--max-new-tokens N] [--out F]
  ask --model <export> --image ct.nii.gz --question "..." --choices "A=...,B=...,C=...,D=..."
                                       multiple-choice answer by the option letters' scores; writes answer.json
  view <run|folder>                    NiiVue viewer of a run, a registration output, or a report
                                       evaluation (CT beside prompt, reference, generated) [--port N]
  demo                                 the embedded demo (what npm run demo runs)

global options: --debug (stack traces), --help
experiments are the names in workspace.json (llmed config check knee) or a path to a config.json`;

type Handler = (args: ParsedArgs) => Promise<number>;

const COMMANDS: Record<string, { flags: string[]; run: Handler }> = {
  'plugins list': { flags: ['json', 'kind'], run: pluginsList },
  'plugins new': { flags: ['kind', 'out'], run: pluginsNew },
  'config check': { flags: ['json', 'portable'], run: configCheck },
  'data inspect': { flags: ['json'], run: dataInspect },
  'data prepare': { flags: ['force'], run: dataPrepare },
  'data generate': { flags: ['out', 'count', 'seed', 'force', 'crop', 'shape', 'block-gap', 'held-out', 'data-dir', 'json'], run: dataGenerate },
  train: { flags: ['device', 'resume', 'iterations', 'batch-size', 'run-dir', 'threads', 'nproc-per-node', 'nnodes', 'node-rank', 'master-addr', 'master-port'], run: train },
  evaluate: { flags: ['pairs', 'pictures', 'metrics', 'split', 'threads', 'out'], run: evaluateCommand },
  export: { flags: ['tag', 'out', 'threads', 'json'], run: exportCommand },
  register: { flags: ['moving', 'fixed', 'model', 'moving-labels', 'fixed-labels', 'labels', 'box-to-box', 'affine', 'out', 'metrics', 'field', 'threads', 'json'], run: registerCommand },
  report: { flags: ['model', 'image', 'region', 'prompt', 'strategy', 'temperature', 'top-p', 'seed', 'repetition-penalty', 'max-new-tokens', 'out', 'threads', 'json'], run: reportCommand },
  ask: { flags: ['model', 'image', 'question', 'choices', 'out', 'threads', 'json'], run: askCommand },
  view: { flags: ['port'], run: view },
  demo: { flags: ['device'], run: demo },
};

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  // the Python side (spawned later, inheriting the environment) keeps its libraries' chatter only then
  if (debug) process.env.LLMED_DEBUG = '1';
  try {
    if (argv.length === 0 || argv[0] === '--help' || argv[0] === 'help' || argv[0] === '-h') {
      console.log(HELP);
      return argv.length === 0 ? 2 : 0;
    }
    const two = `${argv[0]} ${argv[1] ?? ''}`.trim();
    const name = COMMANDS[two] ? two : argv[0];
    const cmd = COMMANDS[name];
    if (!cmd) throw new LlmedError('usage', `unknown command '${argv.filter((a) => !a.startsWith('--')).slice(0, 2).join(' ')}'`, { hint: `commands: ${Object.keys(COMMANDS).join(', ')}` });
    const rest = argv.slice(name.split(' ').length);
    if (rest.includes('--help')) { console.log(HELP); return 0; }
    const args = parseArgs(rest, ['json', 'force', 'debug', 'box-to-box', 'affine', 'portable']);
    allowFlags(args, cmd.flags, name);
    return await cmd.run(args);
  } catch (e) {
    if (isLlmedError(e)) {
      console.error(e.format());
      if (debug) console.error(e.stack);
      return e.exitCode;
    }
    console.error(`error[internal] ${(e as Error)?.message ?? String(e)}`);
    if (debug) console.error((e as Error)?.stack);
    else console.error('  hint: run again with --debug for the stack trace, and report it');
    return 70;
  }
}
