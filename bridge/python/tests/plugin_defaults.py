"""Plugin options as the TypeScript composer fills them (the descriptor's schema is the only home of
defaults): ``fill_options(plugin_dir, [partial, ...])`` runs ``pluginOptions`` of @llmed/core on the
plugin's descriptor with tsx and returns the default-filled option dicts. Tests skip without Node."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

SCRIPT = r"""
(async () => {
  const core = await import(%(core)s);
  const d = (await import(%(index)s)).descriptor;
  const given = JSON.parse(%(given)s);
  process.stdout.write(JSON.stringify(given.map((o, i) => core.pluginOptions(d, o, `${d.id}.case[${i}]`))));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def fill_options(plugin_dir: str | Path, partials: list[dict]) -> list[dict]:
    tsx = REPO / "node_modules/.bin/tsx"
    if not tsx.exists():
        pytest.skip("node_modules/.bin/tsx is not installed: the descriptor's defaults cannot be read")
    script = SCRIPT % {"core": json.dumps(str(REPO / "packages/core/src/index.ts")),
                       "index": json.dumps(str(Path(plugin_dir) / "src" / "index.ts")),
                       "given": json.dumps(json.dumps(partials))}
    r = subprocess.run([str(tsx), "-e", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"reading the descriptor of {plugin_dir} failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout)


_CASE_OPTIONS: dict[str, list[dict]] = {}


def case_options(plugin_dir: str | Path, extra: list[dict] | None = None) -> list[dict]:
    """The filled options of every case in the plugin's tests/cases.json (in order), then of ``extra``: one
    tsx run per plugin folder and test process, however many cases use them."""
    from llmed.plugin_cases import read_cases

    key = json.dumps([str(plugin_dir), extra or []])
    if key not in _CASE_OPTIONS:
        partials = [c.get("options", {}) for c in read_cases(plugin_dir)] + list(extra or [])
        _CASE_OPTIONS[key] = fill_options(plugin_dir, partials)
    return _CASE_OPTIONS[key]
