"""linear: the cases of cases.json."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parents[1]
from llmed_linear import build  # noqa: E402

from llmed.plugin_cases import case_value, read_cases  # noqa: E402
from plugin_registry import fill_options  # noqa: E402

CASES = read_cases(HERE)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["name"] for c in CASES])
def test_cases(index):
    case = CASES[index]
    options = fill_options("linear", case["options"])
    module = build(options, case["shapes"])
    x = torch.from_numpy(case_value(case["inputs"]["tokens"]))
    out = module(x)
    assert list(out.shape) == case["expected"]["tokens"]["shape"]
    if options["tokens"] == "mean":
        assert torch.allclose(out, module.proj(x.mean(dim=1, keepdim=True)))
