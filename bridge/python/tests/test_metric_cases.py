"""Every Metric plugin's cases (``plugins/<id>/tests/cases.json``) through its Python reference: the numbers
the TypeScript metric gives on them (test/core/plugin-cases.test.ts) are the reference's too.

The options of a case are partial; the defaults come from the descriptor's schema, read from the CLI's
listing (``llmed plugins list --json``), as the TypeScript walk fills them with ``pluginOptions``.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmed.assemble import load_factory
from llmed.plugin_cases import case_value, read_cases
from plugin_registry import reference_missing

REPO = Path(__file__).resolve().parents[3]


def _listing() -> list[dict]:
    node = shutil.which("node")
    cli = REPO / "packages/cli/bin/llmed.mjs"
    if not node or not cli.is_file():
        return []
    r = subprocess.run([node, str(cli), "plugins", "list", "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    return json.loads(r.stdout) if r.returncode == 0 else []


METRICS = [d for d in _listing() if d.get("kind") == "Metric" and d.get("python")]
CASES = [(d, c) for d in METRICS for c in read_cases(Path(d["python"]["root"]).parent)]


def _filled(schema: dict, options: dict) -> dict:
    defaults = {k: v["default"] for k, v in (schema.get("properties") or {}).items() if isinstance(v, dict) and "default" in v}
    return {**defaults, **options}


def test_the_first_party_metrics_have_cases():
    if not METRICS:
        pytest.skip("no Node here to list the descriptors")
    with_cases = {d["id"] for d, _ in CASES}
    first_party = {d["id"] for d in METRICS if Path(d["python"]["root"]).is_relative_to(REPO / "plugins")}
    assert len(first_party) >= 8
    assert first_party <= with_cases, sorted(first_party - with_cases)


@pytest.mark.parametrize(("descriptor", "case"), CASES, ids=[f"{d['id']}: {c['name']}" for d, c in CASES])
def test_reference_gives_the_expected_numbers(descriptor, case):
    reference = load_factory(descriptor["python"])
    options = _filled(descriptor["optionsSchema"], case["options"])
    why = reference_missing(sys.modules[reference.__module__], options)  # WordNet, a model folder
    if why:
        pytest.skip(f"{descriptor['id']}: {why}")
    out = reference(options, {k: case_value(v) for k, v in case["inputs"].items()})
    assert case["expected"], "a case must expect something"
    for name, want in case["expected"].items():
        assert name in out, f"{name} not among the outputs {sorted(out)}"
        assert math.isfinite(out[name]) and abs(out[name] - want) <= case["tolerance"], f"{name}: got {out[name]}, expected {want}"
