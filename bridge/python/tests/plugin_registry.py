"""The registered plugins as the TypeScript side describes them, for the Python tests.

Each entry is ``{id, kind, text?, options, optionsSchema, inputs, output?, python}``: the descriptor's
example (options default-filled by ``@llmed/core``'s ``pluginOptions``, as the composer does), its option
schema and its python entry; ``text: true`` marks a text Metric (its runtime is a ``TextMetricRuntime``, its
example inputs are texts). The list comes, in order of preference, from

1. the CLI: ``node packages/cli/bin/llmed.mjs plugins list --json``;
2. the descriptors themselves, loaded with tsx (``plugins/*/src/index.ts``);
3. ``tests/plugin_examples.json``, a snapshot of 2 for machines without Node. Regenerate it with
   ``python tests/test_model_plugins.py --write-examples``.

:func:`fill_options` fills a partial option dict from a plugin's schema the way ajv's ``useDefaults``
does in the composer, so that tests which write specs by hand hand the factories what the composer would:
the Python factories keep no defaults of their own.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PLUGINS = REPO / "plugins"
SNAPSHOT = Path(__file__).resolve().parent / "plugin_examples.json"

TSX_SCRIPT = r"""
(async () => {
  const { readdirSync, existsSync } = await import('node:fs');
  const core = await import(%(core)s);
  const root = %(plugins)s;
  const out = [];
  for (const dir of readdirSync(root).sort()) {
    const idx = `${root}/${dir}/src/index.ts`;
    if (!existsSync(idx)) continue;
    const d = (await import(idx)).descriptor;
    if (!d) continue;
    const options = core.pluginOptions(d, d.example.options, `${d.id}.example`);
    const python = d.python ? { root: `plugins/${dir}/python`, module: d.python.module, factory: d.python.factory } : null;
    const text = core.isTextMetricRuntime(d.runtime) ? { text: true } : {};
    out.push({ id: d.id, kind: d.kind, ...text, optionsSchema: d.options, options, inputs: d.example.inputs, python });
  }
  process.stdout.write(JSON.stringify(out, null, 1));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def _run_json(cmd: list[str]) -> list | None:
    try:
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    try:
        data = json.loads(r.stdout)
    except json.JSONDecodeError:
        return None
    ok = isinstance(data, list) and data and all(isinstance(x, dict) and "id" in x and "kind" in x for x in data)
    return data if ok else None


def examples_via_cli() -> list | None:
    cli = REPO / "packages/cli/bin/llmed.mjs"
    node = shutil.which("node")
    if not cli.is_file() or not node:
        return None
    return _run_json([node, str(cli), "plugins", "list", "--json"])


def examples_via_tsx() -> list | None:
    tsx = REPO / "node_modules/.bin/tsx"
    if not tsx.exists():
        return None
    script = TSX_SCRIPT % {"core": json.dumps(str(REPO / "packages/core/src/index.ts")), "plugins": json.dumps(str(PLUGINS))}
    return _run_json([str(tsx), "-e", script])


@functools.lru_cache(maxsize=1)
def load_examples() -> tuple[str, list]:
    """``(source, entries)``: the live listing where Node is there, else the snapshot."""
    for source, get in (("cli", examples_via_cli), ("tsx", examples_via_tsx)):
        data = get()
        if data:
            return source, data
    return "snapshot", json.loads(SNAPSHOT.read_text())


def plugin_entry(plugin_id: str) -> dict | None:
    return next((e for e in load_examples()[1] if e["id"] == plugin_id), None)


def _fill(schema: dict, value):
    if not isinstance(value, dict) or not isinstance(schema, dict):
        return value
    props = schema.get("properties") or {}
    out = dict(value)
    for key, sub in props.items():
        if key not in out and isinstance(sub, dict) and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key in out and isinstance(sub, dict):
            out[key] = _fill(sub, out[key])
    return out


def fill_options(plugin_id: str, options: dict | None) -> dict:
    """``options`` with the schema defaults of ``plugin_id`` filled in (ajv ``useDefaults``: missing keys
    whose schema has a ``default``, recursively into given objects). Unknown plugins pass through."""
    entry = plugin_entry(plugin_id)
    if entry is None or "optionsSchema" not in entry:
        return dict(options or {})
    return _fill(entry["optionsSchema"], dict(options or {}))


def reference_missing(module, options: dict) -> str | None:
    """Why a Metric's python reference cannot run on this machine, or None. A reference that needs a local
    resource outside pip's reach (METEOR's WordNet from Debian packages, the MiniLM model that npm run setup
    unpacks) defines ``missing(options) -> str | None`` (as the TypeScript descriptor's ``missing``) naming what
    is absent and where; the walks skip with that reason rather than fail on a machine without it."""
    check = getattr(module, "missing", None)
    return check(options) if callable(check) else None
