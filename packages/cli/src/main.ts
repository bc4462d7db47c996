/**
 * `llmed` — the command line. Every failure a user can cause is an LlmedError: one line naming the file or
 * config path and the problem, a hint, a non-zero exit; the stack only with --debug.
 */
import { isLlmedError, LlmedError } from '@llmed/core';
import { allowFlags, parseArgs, type ParsedArgs } from './args.ts';
import { configCheck } from './config-check.ts';
import { dataInspect, dataPrepare } from './data.ts';
import { demo } from './demo.ts';
import { pluginsList } from './plugins.ts';
import { train } from './train.ts';
import { view } from './view.ts';

const HELP = `llmed — medical image registration with LLM backbones

usage: llmed <command> [options]

  plugins list [--json] [--kind K]     the plugin registry (Encoder, LLMBackbone, Adapter, Decoder, Loss, Metric)
  config check <experiment|config>     validate a config and compose its model with shape checks [--json]
  data inspect <file.nii[.gz]>         header, dims, spacing, orientation, intensities, labels [--json]
  data prepare <experiment>            prepare the dataset into the training cache [--force]
  train <experiment>                   train (PyTorch through the Python bridge) [--device auto|cpu|cuda]
                                       [--resume <run>] [--iterations N] [--run-dir D]
  evaluate <experiment|run>            (not built yet)
  export <run>                         (not built yet)
  register --moving m --fixed f --model <export>   (not built yet)
  view <run|folder>                    NiiVue viewer of a run or registration output [--port N]
  demo                                 the embedded demo (what npm run demo runs)

global options: --debug (stack traces), --help
experiments are the names in workspace.json (llmed config check knee) or a path to a config.json`;

type Handler = (args: ParsedArgs) => Promise<number>;

const notBuilt = (what: string, issue: string): Handler => async () => {
  throw new LlmedError('not-built', `'${what}' is not built yet`, { hint: `tracked in ${issue}`, exitCode: 3 });
};

const COMMANDS: Record<string, { flags: string[]; run: Handler }> = {
  'plugins list': { flags: ['json', 'kind'], run: pluginsList },
  'config check': { flags: ['json'], run: configCheck },
  'data inspect': { flags: ['json'], run: dataInspect },
  'data prepare': { flags: ['force'], run: dataPrepare },
  train: { flags: ['device', 'resume', 'iterations', 'run-dir'], run: train },
  evaluate: { flags: [], run: notBuilt('llmed evaluate', 'the export/evaluation issue') },
  export: { flags: [], run: notBuilt('llmed export', 'the export/evaluation issue') },
  register: { flags: ['moving', 'fixed', 'model', 'moving-labels', 'fixed-labels', 'out'], run: notBuilt('llmed register', 'the export/evaluation issue') },
  view: { flags: ['port'], run: view },
  demo: { flags: ['device'], run: demo },
};

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
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
    const args = parseArgs(rest, ['json', 'force', 'debug']);
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
