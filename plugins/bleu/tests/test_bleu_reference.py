"""The bleu plugin's Python reference (nltk corpus_bleu) reproduces tests/cases.json, and sacrebleu agrees
with nltk where they define the same number."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PLUGIN.parents[1] / "bridge" / "python"), str(PLUGIN / "python")]

from llmed.plugin_cases import read_cases  # noqa: E402
from plugin_registry import fill_options  # noqa: E402  (bridge/python/tests, on the path by plugins/conftest.py)

pytest.importorskip("nltk")
import llmed_bleu  # noqa: E402

CASES = read_cases(PLUGIN)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case):
    got = llmed_bleu.reference(fill_options("bleu", case["options"]), case["inputs"])
    for k, want in case["expected"].items():
        assert got[k] == pytest.approx(want, abs=case["tolerance"]), k


def test_sacrebleu_equals_nltk_on_13a_tokens():
    pytest.importorskip("sacrebleu")
    inputs = {
        "candidates": ["The 3.5cm lesion, left kidney.", "Spleen: mildly enlarged (12 cm)."],
        "references": [["A 3.5 cm lesion in the left kidney.", "Lesion, left kidney."], "The spleen is mildly enlarged (12 cm)."],
    }
    o = fill_options("bleu", {"tokenise": "13a"})
    assert llmed_bleu.sacrebleu_reference(o, inputs)["bleu-4"] == pytest.approx(llmed_bleu.reference(o, inputs)["bleu-4"], abs=1e-12)
