/**
 * @llmed/nx-plugin — infers one Nx project per experiment listed in the llmed workspace.json, rooted at
 * the experiment's config folder, with the targets train / evaluate / export / register / prepare / check.
 * Each target runs the `llmed` CLI, so `nx run knee:train --device cuda` is `llmed train knee --device cuda`
 * (Nx passes extra flags through). Nothing is hand-listed: add an experiment to workspace.json and its
 * project appears.
 *
 * Shipped as plain CommonJS so Nx loads it without a TypeScript transpiler.
 */
const { existsSync, readFileSync } = require('node:fs');
const { dirname, join, relative } = require('node:path');

const TARGETS = {
  check: { command: 'config check', description: 'validate the config and compose the model (shape checks)' },
  prepare: { command: 'data prepare', description: 'prepare the dataset into the training cache' },
  train: { command: 'train', description: 'train the model (PyTorch via the Python bridge)' },
  evaluate: { command: 'evaluate', description: 'evaluate on the test pairs of the protocol' },
  export: { command: 'export', description: 'export the field predictor as ONNX + manifest' },
  register: { command: 'register', description: 'register a pair with the exported model (no Python)' },
};

function readWorkspace(root, file) {
  const text = readFileSync(join(root, file), 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`llmed nx-plugin: ${file} is not valid JSON: ${e.message}`, { cause: e });
  }
}

const createNodesV2 = [
  'workspace.json',
  (configFiles, _options, context) => {
    const results = [];
    for (const file of configFiles) {
      // Only the llmed workspace file at the root; nested workspace.json files belong to others.
      if (dirname(file) !== '.') continue;
      const ws = readWorkspace(context.workspaceRoot, file);
      if (!ws || typeof ws.experiments !== 'object') continue;
      const projects = {};
      for (const [name, configPath] of Object.entries(ws.experiments)) {
        const root = dirname(configPath);
        // Nx needs a real folder for every project ("project knee not found" otherwise).
        if (!existsSync(join(context.workspaceRoot, root))) continue;
        const cli = relative(root, 'packages/cli/bin/llmed.mjs').split('\\').join('/');
        const targets = {};
        for (const [target, t] of Object.entries(TARGETS)) {
          targets[target] = {
            executor: 'nx:run-commands',
            options: { command: `node ${cli} ${t.command} ${name}`, cwd: root, forwardAllArgs: true },
            metadata: { description: t.description, technologies: ['llmed'] },
            cache: false,
          };
        }
        projects[root] = { name, root, projectType: 'application', tags: ['llmed:experiment'], targets };
      }
      // The benchmarks, inferred from the files in bench/: `nx run bench:accuracy`, `nx run bench:inference`, ...
      const BENCH_SCRIPTS = { accuracy: 'bench/accuracy/accuracy.ts', inference: 'bench/inference/inference.ts', imaging: 'bench/imaging/read-reorient-resample.ts', metrics: 'bench/metrics/hd95.ts', training: 'bench/training/bridge-overhead.ts', 'training-conv': 'bench/training/cpu-conv.ts', 'training-memory': 'bench/training/memory.ts' };
      if (existsSync(join(context.workspaceRoot, 'bench'))) {
        const targets = {};
        for (const [target, script] of Object.entries(BENCH_SCRIPTS)) {
          if (!existsSync(join(context.workspaceRoot, script))) continue;
          const install = target === 'accuracy' ? 'node bench/accuracy/install-optional.mjs && ' : '';
          targets[target] = {
            executor: 'nx:run-commands',
            options: { command: `node scripts/setup.mjs --quiet && ${install}node --import tsx ${script}`, cwd: '.', forwardAllArgs: true },
            metadata: { description: `benchmark: ${script} (results in bench/results/)`, technologies: ['llmed'] },
            cache: false,
          };
        }
        projects.bench = { name: 'bench', root: 'bench', projectType: 'application', tags: ['llmed:bench'], targets };
      }
      results.push([file, { projects }]);
    }
    return results;
  },
];

module.exports = { createNodesV2, name: '@llmed/nx-plugin' };
