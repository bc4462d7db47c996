/**
 * `llmed plugins new <id> --kind <Kind> [--out <folder>]`: writes a plugin folder of the shape of the
 * first-party ones (docs/writing-a-plugin.md): package.json, src/index.ts (descriptor +
 * `pluginModule(descriptor)`, the inversify ContainerModule), python/llmed_<id>/ where the kind trains, and
 * tests/. The code written is a small working plugin of its kind, not a stub: it composes, its example
 * builds, and its tests pass as written. The folder is built under a temporary name and renamed into
 * place; when workspace.json's plugin list does not cover it yet, it is added there.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { LlmedError, loadWorkspace, PLUGIN_KINDS, pluginEntries, publishFolder, writeFileAtomic, type PluginKind } from '@llmed/core';
import type { ParsedArgs } from './args.ts';
import { flagString } from './args.ts';
import { loadContext } from './context.ts';

const PLUGIN_ID = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
/** Kinds with a template. A Decoder's contract (fields and warped images per scale, cascades) is larger
 *  than a template can show well: start from plugins/voxelmorph-decoder instead. */
const TEMPLATE_KINDS = ['Encoder', 'LLMBackbone', 'Adapter', 'Loss', 'Metric'] as const satisfies readonly PluginKind[];
type TemplateKind = (typeof TEMPLATE_KINDS)[number];

interface Names { id: string; kind: TemplateKind; module: string; pascal: string; modelType: string }

export async function pluginsNew(args: ParsedArgs): Promise<number> {
  const id = args.positionals[0];
  const kind = flagString(args, 'kind');
  if (!id || args.positionals.length > 1) throw new LlmedError('usage', 'llmed plugins new <id> --kind <Kind> [--out <folder>]', { hint: `kinds: ${TEMPLATE_KINDS.join(', ')}` });
  if (!PLUGIN_ID.test(id)) throw new LlmedError('usage', `plugin id '${id}' is not valid: lower-case letters, digits and single dashes, starting with a letter`);
  if (!kind) throw new LlmedError('usage', `--kind is required: one of ${TEMPLATE_KINDS.join(', ')}`);
  if (!PLUGIN_KINDS.includes(kind as PluginKind)) throw new LlmedError('usage', `unknown kind '${kind}'; kinds: ${PLUGIN_KINDS.join(', ')}`);
  if (!(TEMPLATE_KINDS as readonly string[]).includes(kind)) {
    throw new LlmedError('usage', `there is no template for kind '${kind}'`, { hint: 'copy plugins/voxelmorph-decoder (a U-Net decoder) and see docs/writing-a-plugin.md' });
  }
  const { ws, registry } = await loadContext();
  if (registry.list().some((d) => d.id === id)) throw new LlmedError('plugin', `plugin id '${id}' is already registered by ${registry.sourceOf(id)}`, { where: ws.file });

  const target = resolve(flagString(args, 'out') ?? join(ws.root, 'plugins', id));
  if (existsSync(target)) throw new LlmedError('usage', `${target} already exists; choose another id or --out`, { where: target });
  const names: Names = { id, kind: kind as TemplateKind, module: `llmed_${id.replaceAll('-', '_')}`, pascal: id.split('-').map((w) => w[0].toUpperCase() + w.slice(1)).join(''), modelType: id.replaceAll('-', '_') };
  const files = templateFiles(names);

  // build the folder under a temporary name next to the target, then rename it into place
  const staging = `${target}.tmp-${process.pid}`;
  try {
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(join(staging, rel, '..'), { recursive: true });
      writeFileSync(join(staging, rel), text);
    }
    publishFolder(staging, target);
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw new LlmedError('plugin', `could not write ${target}: ${(e as Error).message}`, { where: target, cause: e });
  }

  const registered = await registerInWorkspace(ws.root, ws.file, target);
  const shown = relative(process.cwd(), target) || '.';
  console.log(`wrote ${shown}/ (${names.kind} plugin '${id}'): ${Object.keys(files).sort().join(', ')}`);
  console.log(registered ? `registered it in ${relative(process.cwd(), ws.file) || ws.file} (plugins: "${registered}")` : `workspace.json already lists it (${relative(process.cwd(), ws.file) || ws.file})`);
  console.log(`next: llmed plugins list --kind ${names.kind}; edit ${shown}/src/index.ts${files[`python/${names.module}/__init__.py`] ? ` and ${shown}/python/${names.module}/__init__.py` : ''}; see docs/writing-a-plugin.md`);
  return 0;
}

/** Add the folder to workspace.json's plugins unless an entry there already loads it; returns the entry added. */
async function registerInWorkspace(root: string, file: string, dir: string): Promise<string | null> {
  const ws = loadWorkspace(root);
  let covered: boolean;
  try {
    covered = pluginEntries(ws).some((p) => p.entry.startsWith(dir + sep));
  } catch {
    covered = false; // an entry that does not resolve now is the user's to mend; ours is added all the same
  }
  if (covered) return null;
  const raw = JSON.parse(readFileSync(file, 'utf8')) as { plugins?: string[] };
  const rel = relative(root, dir).split(sep).join('/');
  const entry = rel.startsWith('..') ? dir : `./${rel}`;
  raw.plugins = [...(raw.plugins ?? []), entry];
  await writeFileAtomic(file, `${JSON.stringify(raw, null, 2)}\n`, (where, message) => new LlmedError('config', message, { where }));
  return entry;
}

function templateFiles(n: Names): Record<string, string> {
  const trains = n.kind !== 'Metric';
  const files: Record<string, string> = {
    'package.json': `${JSON.stringify({
      name: `llmed-plugin-${n.id}`,
      version: '0.1.0',
      private: true,
      type: 'module',
      exports: { '.': './src/index.ts' },
      ...(trains ? { llmed: { python: `python/${n.module}` } } : {}),
      dependencies: { '@llmed/core': '0.1.0', ...(n.kind === 'Metric' ? { '@llmed/imaging': '0.1.0' } : {}) },
    }, null, 2)}\n`,
    'src/index.ts': TS_TEMPLATES[n.kind](n),
    [`tests/${n.id}.test.ts`]: TS_TEST_TEMPLATES[n.kind](n),
    'README.md': `# ${n.id}\n\nA ${n.kind} plugin of llmed, written by \`llmed plugins new ${n.id} --kind ${n.kind}\`.\n\n`
      + `- \`src/index.ts\`: the descriptor (options schema with the defaults, shape rule, example) and its ContainerModule.\n`
      + (n.kind === 'LLMBackbone' ? '- `family.json`: the LLM family (model types, Hugging Face repo, LoRA targets, transformers classes, defaults), read by both sides.\n' : '')
      + (trains ? `- \`python/${n.module}/\`: the torch factory \`build(options, inputs)\`; \`options\` arrive default-filled from the schema.\n` : '')
      + `- \`tests/\`: \`npx vitest run ${'<this folder>'}/tests\`${trains ? `; \`.venv/bin/python -m pytest <this folder>/tests\` (PYTHONPATH=bridge/python of the llmed checkout)` : ''}.\n\n`
      + 'See docs/writing-a-plugin.md in the llmed repository.\n',
  };
  if (n.kind === 'LLMBackbone') files['family.json'] = familyTemplate(n);
  if (n.kind !== 'Metric') {
    files[`python/${n.module}/__init__.py`] = PY_TEMPLATES[n.kind](n);
    files[`tests/test_${n.module}.py`] = PY_TEST_TEMPLATE(n);
  }
  return files;
}

/**
 * An LLM family's family.json, guessed from the id as transformers names things (model type
 * \`<id>\`, classes \`<Pascal>Config\`, \`<Pascal>DecoderLayer\`, ... in \`transformers.models.<id>.modeling_<id>\`):
 * right as written for e.g. mistral or gemma; otherwise the author corrects the names. The defaults are tiny
 * until the author puts the real checkpoint's (its config.json's hidden_size and num_hidden_layers).
 */
function familyTemplate(n: Names): string {
  return `${JSON.stringify({
    id: n.id,
    title: n.pascal,
    modelTypes: [n.modelType],
    huggingFaceRepo: `<organisation>/<repository of the ${n.id} checkpoint>`,
    defaults: { checkpoint: `checkpoints/${n.id}`, layers: [0], hiddenSize: 64, numLayers: 2 },
    loraTargets: ['q_proj', 'k_proj', 'v_proj'],
    transformers: {
      module: `transformers.models.${n.modelType}.modeling_${n.modelType}`,
      config: `${n.pascal}Config`,
      decoderLayer: `${n.pascal}DecoderLayer`,
      rotaryEmbedding: `${n.pascal}RotaryEmbedding`,
      rmsNorm: `${n.pascal}RMSNorm`,
      model: `${n.pascal}Model`,
      causalLM: `${n.pascal}ForCausalLM`,
    },
  }, null, 2)}\n`;
}

const TS_TEMPLATES: Record<TemplateKind, (n: Names) => string> = {
  Encoder: (n) => `/**
 * ${n.id} — a strided-convolution image pyramid, one network applied to the moving and the fixed image.
 * Level 0: Conv3d(k3) + LeakyReLU at full resolution; each further level halves the grid (stride 2).
 *
 *   in  C×(i×j×k) per image      out (both streams)  channels[l] × (i, j, k)/2^l
 */
import { definePlugin, pluginModule, pyramidShape, pythonEntry, requireInput } from '@llmed/core';

export interface ${n.pascal}Options { channels: number[] }

export const descriptor = definePlugin<${n.pascal}Options>({
  id: '${n.id}',
  kind: 'Encoder',
  summary: 'strided-convolution image pyramid shared by the moving and the fixed image',
  python: pythonEntry(import.meta.url, '../python', '${n.module}'),
  options: {
    type: 'object',
    properties: {
      channels: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 2, default: [8, 16, 16, 32, 32], description: 'width of each level, full resolution first' },
    },
  },
  shape(inputs, o) {
    return pyramidShape(requireInput(inputs, 'image', '${n.id}'), o.channels);
  },
  example: { options: { channels: [2, 4, 4, 8, 8] }, inputs: { image: { type: 'volume', channels: 1, spatial: [16, 16, 16] } } },
});

export default pluginModule(descriptor);
`,
  LLMBackbone: (n) => `/**
 * ${n.id} — decoder layer(s) of a local Hugging Face checkpoint as a token encoder. The family is
 * described once, in ../family.json (accepted model types, Hugging Face repo, LoRA targets, the
 * transformers module and classes, the option defaults), which the Python side reads too: edit the
 * family there. Put the checkpoint folder (config.json + model.safetensors) at defaults.checkpoint, or
 * give \`checkpoint\` in the config.
 *
 *   in  L×hiddenSize tokens   out  L×hiddenSize tokens
 */
import { llmBackboneDescriptor, pluginModule, pythonEntry, readLLMFamily } from '@llmed/core';

export const descriptor = llmBackboneDescriptor({
  ...readLLMFamily(import.meta.url, '../family.json'),
  python: pythonEntry(import.meta.url, '../python', '${n.module}'),
});

export default pluginModule(descriptor);
`,
  Adapter: (n) => `/**
 * ${n.id} — a token adapter: LayerNorm, then Linear(W → out). \`out\` absent keeps the width.
 *
 *   in  L×W tokens   out  L×(out ?? W) tokens
 */
import { definePlugin, pluginModule, pythonEntry, requireInput } from '@llmed/core';

export interface ${n.pascal}Options { out?: number }

export const descriptor = definePlugin<${n.pascal}Options>({
  id: '${n.id}',
  kind: 'Adapter',
  summary: 'token adapter: LayerNorm then Linear to the out width',
  python: pythonEntry(import.meta.url, '../python', '${n.module}'),
  options: {
    type: 'object',
    properties: {
      out: { type: 'integer', minimum: 1, description: 'output width (absent: the input width)' },
    },
  },
  shape(inputs, o) {
    const tokens = requireInput(inputs, 'tokens', '${n.id}');
    return { ...tokens, width: o.out ?? tokens.width };
  },
  example: { options: { out: 16 }, inputs: { tokens: { type: 'tokens', length: 8, width: 32, grid: [2, 2, 2] } } },
});

export default pluginModule(descriptor);
`,
  Loss: (n) => `/**
 * ${n.id} — mean absolute difference between the warped moving image and the fixed image, on the final
 * field's grid: L = mean |m∘φ − f|.
 */
import { definePlugin, pluginModule, pythonEntry } from '@llmed/core';

export const descriptor = definePlugin({
  id: '${n.id}',
  kind: 'Loss',
  summary: 'mean absolute difference of the warped moving and the fixed image (final field)',
  python: pythonEntry(import.meta.url, '../python', '${n.module}'),
  options: { type: 'object', properties: {} },
  example: { options: {}, inputs: {} },
});

export default pluginModule(descriptor);
`,
  Metric: (n) => `/**
 * ${n.id} — mean displacement magnitude in mm: mean over voxels of |u(p) · spacing|. Runs in TypeScript at
 * evaluation and registration (a Metric has no Python side).
 */
import { definePlugin, pluginModule } from '@llmed/core';
import type { MetricInput, MetricResult, MetricRuntime } from '@llmed/imaging';

export type ${n.pascal}Options = Record<string, never>;

export const runtime: MetricRuntime<${n.pascal}Options> = {
  compute(input: MetricInput): MetricResult {
    const { field, dims, spacing } = input;
    const n = dims[0] * dims[1] * dims[2];
    if (!field || field.length !== 3 * n) throw new Error(\`${n.id} needs a field of 3 × \${n} values, got \${field?.length ?? 'none'}\`);
    let sum = 0;
    for (let q = 0; q < n; q++) sum += Math.hypot(field[q] * spacing[0], field[n + q] * spacing[1], field[2 * n + q] * spacing[2]);
    return { value: sum / n, unit: 'mm', higherIsBetter: false };
  },
};

export const descriptor = definePlugin<${n.pascal}Options>({
  id: '${n.id}',
  kind: 'Metric',
  summary: 'mean displacement magnitude in mm',
  options: { type: 'object', properties: {} },
  runtime,
  // a Metric's example inputs are values (packages/core/src/plugin-cases.ts): a (3, K, J, I) field here
  example: { options: {}, inputs: { field: { shape: [3, 2, 2, 2], sine: { seed: 0, scale: 0.5, offset: 0 } }, spacing: [1, 1, 2] } },
});

export default pluginModule(descriptor);
`,
};

const TS_TEST_TEMPLATES: Record<TemplateKind, (n: Names) => string> = {
  Encoder: (n) => shapeTest(n, `expect(out).toEqual({ type: 'pyramid', levels: [16, 8, 4, 2, 1].map((s, l) => ({ scale: 16 / s, channels: [2, 4, 4, 8, 8][l], spatial: [s, s, s] })) });`),
  LLMBackbone: (n) => `import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pluginOptions } from '@llmed/core';
import { descriptor } from '../src/index.ts';

const family = JSON.parse(readFileSync(new URL('../family.json', import.meta.url), 'utf8'));

describe('${n.id}', () => {
  it('is an LLM backbone described by its family.json, whose defaults fill its options', () => {
    expect(descriptor.kind).toBe('LLMBackbone');
    expect(descriptor.id).toBe(family.id);
    const options = pluginOptions(descriptor, {}, '${n.id}');
    expect(options.checkpoint).toBe(family.defaults.checkpoint);
    expect(options.layers).toEqual(family.defaults.layers);
    expect(options.hiddenSize).toBe(family.defaults.hiddenSize);
    // tokens keep their shape; a width other than the hidden size is refused before Python starts
    const tokens = { type: 'tokens' as const, length: 8, width: options.hiddenSize, grid: [2, 2, 2] as [number, number, number] };
    expect(descriptor.shape!({ tokens }, options, { workspaceRoot: '.' })).toEqual(tokens);
    expect(() => descriptor.shape!({ tokens: { ...tokens, width: options.hiddenSize + 1 } }, options, { workspaceRoot: '.' })).toThrow(/hidden size/);
  });
});
`,
  Adapter: (n) => shapeTest(n, `expect(out).toEqual({ type: 'tokens', length: 8, width: 16, grid: [2, 2, 2] });
    const same = descriptor.shape!(descriptor.example.inputs, pluginOptions(descriptor, {}, '${n.id}') as typeof options, { workspaceRoot: '.' });
    expect(same).toEqual(descriptor.example.inputs.tokens);`),
  Loss: (n) => `import { describe, expect, it } from 'vitest';
import { pluginOptions } from '@llmed/core';
import { descriptor } from '../src/index.ts';

describe('${n.id}', () => {
  it('is a Loss with a Python side and valid example options', () => {
    expect(descriptor.kind).toBe('Loss');
    expect(descriptor.python?.module).toBe('${n.module}');
    expect(pluginOptions(descriptor, descriptor.example.options, '${n.id}')).toEqual({});
  });
});
`,
  Metric: (n) => `import { describe, expect, it } from 'vitest';
import { descriptor, runtime } from '../src/index.ts';

describe('${n.id}', () => {
  it('is the mean displacement magnitude in mm', () => {
    expect(descriptor.kind).toBe('Metric');
    const dims = [2, 1, 1] as const;
    // voxel 0 moves (3, 4, 0) voxels of 1 mm: 5 mm; voxel 1 moves 1 voxel along k of 2 mm: 2 mm
    const field = Float32Array.from([3, 0, 4, 0, 0, 1]);
    const r = runtime.compute({ field, dims: [...dims], spacing: [1, 1, 2], labels: [] });
    expect(r.value).toBeCloseTo(3.5, 6);
    expect(r.unit).toBe('mm');
    expect(() => runtime.compute({ dims: [...dims], spacing: [1, 1, 1], labels: [] })).toThrow(/needs a field/);
  });
});
`,
};

function shapeTest(n: Names, assertion: string): string {
  return `import { describe, expect, it } from 'vitest';
import { pluginOptions } from '@llmed/core';
import { descriptor } from '../src/index.ts';

describe('${n.id}', () => {
  it('gives the output shape of its example', () => {
    const options = pluginOptions(descriptor, descriptor.example.options, '${n.id}') as Parameters<NonNullable<typeof descriptor.shape>>[1];
    const out = descriptor.shape!(descriptor.example.inputs, options, { workspaceRoot: '.' });
    ${assertion}
  });
});
`;
}

const PY_TEMPLATES: Record<Exclude<TemplateKind, 'Metric'>, (n: Names) => string> = {
  Encoder: (n) => `"""${n.id} — strided-convolution image pyramid shared by the moving and the fixed image.

\`\`build(options, inputs)\`\` returns an nn.Module with \`\`forward(moving, fixed) -> (moving_pyramid, fixed_pyramid)\`\`,
each a list of \`\`(N, channels[l], K/2^l, J/2^l, I/2^l)\`\` tensors, finest first. \`\`options\`\` arrive filled in
from the descriptor's schema (src/index.ts), which is the one place of the defaults.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class ${n.pascal}(nn.Module):
    def __init__(self, image_channels: int, channels: list[int]):
        super().__init__()
        self.levels = nn.ModuleList()
        previous = image_channels
        for level, width in enumerate(channels):
            stride = 1 if level == 0 else 2
            self.levels.append(nn.Sequential(nn.Conv3d(previous, width, 3, stride=stride, padding=1), nn.LeakyReLU(0.2)))
            previous = width

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor):
        return self.pyramid(moving), self.pyramid(fixed)


def build(options: dict, inputs: dict) -> nn.Module:
    return ${n.pascal}(int(inputs["image"]["channels"]), [int(c) for c in options["channels"]])
`,
  LLMBackbone: (n) => `"""${n.id} — decoder layer(s) of a local Hugging Face checkpoint as a token encoder.

The family is the plugin folder's family.json (shared with the TypeScript descriptor); loading the chosen
layers, the attention mask, RoPE, freezing and LoRA are \`\`llmed.llm.build_decoder_stack\`\`.
\`\`forward(tokens (N, L, W)) -> tokens (N, L, W)\`\`.
"""
from __future__ import annotations

from pathlib import Path

from llmed.llm import Family, build_decoder_stack

FAMILY = Family.from_json(Path(__file__).resolve().parents[2] / "family.json")


def build(options: dict, inputs: dict, workspace_root: str | None = None):
    return build_decoder_stack(FAMILY, options, inputs, workspace_root=workspace_root)
`,
  Adapter: (n) => `"""${n.id} — token adapter: LayerNorm, then Linear(W -> out); \`\`out\`\` absent keeps the width.

\`\`build(options, inputs)\`\` returns an nn.Module with \`\`forward(tokens (N, L, W)) -> (N, L, out)\`\`.
"""
from __future__ import annotations

import torch.nn as nn


def build(options: dict, inputs: dict) -> nn.Module:
    width = int(inputs["tokens"]["width"])
    out = int(options.get("out") or width)  # no default here: an absent \`\`out\`\` means the input width
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, out))
`,
  Loss: (n) => `"""${n.id} — mean absolute difference of the warped moving and the fixed image on the final field's grid.

\`\`build(options, inputs)\`\` returns an nn.Module with \`\`forward(outputs, batch) -> scalar tensor\`\`:
\`\`outputs["warped"]\`\` holds the moving image warped by each field (coarse to fine) and
\`\`llmed.losses.prepare_batch\`\` adds \`\`batch["fixed_pyramid"]\`\`, the fixed image on each field's grid.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from llmed.losses import prepare_batch


class ${n.pascal}(nn.Module):
    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        batch = prepare_batch(outputs, batch)
        return (outputs["warped"][-1] - batch["fixed_pyramid"][-1]).abs().mean()


def build(options: dict, inputs: dict | None = None) -> nn.Module:
    return ${n.pascal}()
`,
};

function PY_TEST_TEMPLATE(n: Names): string {
  const body: Record<Exclude<TemplateKind, 'Metric'>, string> = {
    Encoder: `    module = build({"channels": [2, 4, 4, 8, 8]}, {"image": {"type": "volume", "channels": 1, "spatial": [16, 16, 16]}})
    moving_pyramid, fixed_pyramid = module(torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16))
    assert [tuple(t.shape) for t in moving_pyramid] == [(1, c, 16 // 2**l, 16 // 2**l, 16 // 2**l) for l, c in enumerate([2, 4, 4, 8, 8])]
    sum(t.mean() for t in moving_pyramid + fixed_pyramid).backward()
    assert all(p.grad is not None for p in module.parameters())`,
    LLMBackbone: `    assert FAMILY.id == "${n.id}" and FAMILY.model_types == ("${n.modelType}",)


def test_a_tiny_checkpoint_loads_strictly_and_runs(tmp_path):
    # A checkpoint in the real format (config.json + model.safetensors), written by the family's own
    # transformers classes at tiny sizes; until family.json names classes transformers has, say so.
    try:
        FAMILY.classes()
    except FamilyError as e:
        pytest.skip(f"fill in family.json's transformers classes: {e}")
    write_tiny_checkpoint(FAMILY, tmp_path, hidden=64, layers=2)
    options = {"checkpoint": str(tmp_path), "layers": [1], "hiddenSize": 64, "init": "pretrained", "trainable": False,
               "attention": "bidirectional", "rope": False, "finalNorm": "none", "lora": None}
    stack = build(options, {"tokens": {"type": "tokens", "length": 8, "width": 64, "grid": [2, 2, 2]}})
    assert stack.keys_read and all(k.split(".layers.1.")[0] in ("model", "model.language_model") for k in stack.keys_read)
    out = stack(torch.randn(1, 8, 64))
    assert out.shape == (1, 8, 64) and torch.isfinite(out).all()`,
    Adapter: `    module = build({"out": 16}, {"tokens": {"type": "tokens", "length": 8, "width": 32, "grid": [2, 2, 2]}})
    out = module(torch.randn(1, 8, 32))
    assert tuple(out.shape) == (1, 8, 16)
    out.mean().backward()`,
    Loss: `    module = build({}, {})
    fixed = torch.rand(1, 1, 8, 8, 8)
    field = torch.zeros(1, 3, 8, 8, 8, requires_grad=True)
    same = module({"fields": [field], "warped": [fixed.clone()], "steps": 1}, {"moving": fixed, "fixed": fixed})
    assert float(same) == 0.0
    other = module({"fields": [field], "warped": [fixed + 0.5], "steps": 1}, {"moving": fixed, "fixed": fixed})
    assert abs(float(other) - 0.5) < 1e-6`,
  };
  const torchImport = n.kind === 'LLMBackbone' ? '\nimport pytest\nimport torch\nfrom llmed.llm import FamilyError\nfrom llmed.testing import write_tiny_checkpoint\n' : '\nimport torch\n';
  const imports = n.kind === 'LLMBackbone' ? `from ${n.module} import FAMILY, build` : `from ${n.module} import build`;
  return `"""Tests of ${n.id}'s Python side; run with PYTHONPATH=<llmed checkout>/bridge/python:<this plugin>/python."""
from __future__ import annotations

import sys
from pathlib import Path
${torchImport}
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

${imports}  # noqa: E402


def test_example_builds_and_runs():
${body[n.kind as Exclude<TemplateKind, 'Metric'>]}
`;
}
