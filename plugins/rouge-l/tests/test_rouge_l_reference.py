"""The rouge-l plugin's Python reference reproduces tests/cases.json."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PLUGIN.parents[1] / "bridge" / "python"), str(PLUGIN / "python")]

from llmed.plugin_cases import read_cases  # noqa: E402
from plugin_registry import fill_options  # noqa: E402  (bridge/python/tests, on the path by plugins/conftest.py)

pytest.importorskip("rouge_score")
CASES = read_cases(PLUGIN)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case):
    import llmed_rouge_l

    got = llmed_rouge_l.reference(fill_options("rouge-l", case["options"]), case["inputs"])
    for k, want in case["expected"].items():
        assert got[k] == pytest.approx(want, abs=case["tolerance"]), k
