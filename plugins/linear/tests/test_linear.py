"""linear: the cases of cases.json."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE / "python"), str(HERE.parents[1] / "bridge/python"), str(HERE.parents[1] / "bridge/python/tests")]
from llmed_linear import build  # noqa: E402
from plugin_defaults import case_options  # noqa: E402

from llmed.plugin_cases import case_value, read_cases  # noqa: E402

CASES = read_cases(HERE)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["name"] for c in CASES])
def test_cases(index):
    case, options = CASES[index], case_options(HERE)[index]
    module = build(options, {"tokens": case["inputs"]["tokenShape"]})
    x = torch.from_numpy(case_value(case["inputs"]["tokens"]))
    out = module(x)
    assert list(out.shape) == case["expected"]["tokens"]["shape"]
    if options["tokens"] == "mean":
        assert torch.allclose(out, module.proj(x.mean(dim=1, keepdim=True)))
