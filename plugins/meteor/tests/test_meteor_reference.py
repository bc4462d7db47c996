"""The meteor plugin's Python reference (nltk meteor_score on Debian's WordNet) reproduces tests/cases.json."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PLUGIN.parents[1] / "bridge" / "python"), str(PLUGIN / "python")]

from llmed.plugin_cases import read_cases  # noqa: E402
from plugin_registry import fill_options  # noqa: E402  (bridge/python/tests, on the path by plugins/conftest.py)

pytest.importorskip("nltk")
import llmed_meteor  # noqa: E402

CASES = read_cases(PLUGIN)
WHY = llmed_meteor.missing(fill_options("meteor", {}))


@pytest.mark.skipif(WHY is not None, reason=f"METEOR cross-check needs WordNet: {WHY}")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case):
    got = llmed_meteor.reference(fill_options("meteor", case["options"]), case["inputs"])
    for k, want in case["expected"].items():
        assert got[k] == pytest.approx(want, abs=case["tolerance"]), k


def test_generated_lexnames_lists_the_45_lexicographer_files():
    lines = llmed_meteor.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"
