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
    if options["normalise"] == "standardise":
        assert module.needs_fit
        info = module.fit_features(x)
        assert not module.needs_fit and info["channels"] == x.shape[-1]
        z = (x - module.feature_mean) / module.feature_scale
        assert torch.allclose(z.reshape(-1, x.shape[-1]).mean(0), torch.zeros(x.shape[-1]), atol=1e-5)
        assert torch.allclose(z.reshape(-1, x.shape[-1]).std(0, unbiased=False), torch.ones(x.shape[-1]), atol=1e-4)
        # the statistics are persistent buffers: a fresh adapter given the state dict maps the same way
        again = build(options, case["shapes"])
        again.load_state_dict(module.state_dict())
        assert torch.equal(again(x), module(x))
        assert torch.allclose(module(x), module.proj(z), atol=1e-6)
        # target_rms: the map starts its tokens at that scale (weights rescaled, bias zero)
        scaled = build(options, case["shapes"])
        info = scaled.fit_features(x, target_rms=0.05)
        assert info["tokenRms"] == 0.05 and info["tokenRmsBefore"] > 0
        assert abs(float(scaled(x).pow(2).mean().sqrt()) - 0.05) < 1e-4
    out = module(x)
    assert list(out.shape) == case["expected"]["tokens"]["shape"]
    if options["tokens"] == "mean":
        assert torch.allclose(out, module.proj(x.mean(dim=1, keepdim=True)))
