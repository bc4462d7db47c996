"""The gradient penalty of a linear ramp, in closed form (moved from test_model_assemble.py)."""

from __future__ import annotations

import pytest
import torch
from llmed_diffusion import gradient_penalty


def test_gradient_penalty_of_a_ramp():
    field = torch.zeros(1, 3, 4, 5, 6)
    field[:, 0] = 0.5 * torch.arange(6.0)  # u_i = 0.5·i: only ∂_i of channel 0 is non-zero
    assert gradient_penalty(field).item() == pytest.approx(0.25 / 3 / 3)
    assert gradient_penalty(field, "l1").item() == pytest.approx(0.5 / 3 / 3)


def _numpy_grad(f, l1: bool) -> float:
    import numpy as np

    diffs = [f[:, :, 1:] - f[:, :, :-1], f[:, :, :, 1:] - f[:, :, :, :-1], f[:, :, :, :, 1:] - f[:, :, :, :, :-1]]
    return float(sum(np.mean(np.abs(d) if l1 else d * d) for d in diffs) / 3.0)


def test_the_numpy_cases_expect_the_numpy_value():
    from pathlib import Path

    import numpy as np

    from llmed.plugin_cases import case_value, read_cases

    cases = [c for c in read_cases(Path(__file__).parents[1]) if "(numpy)" in c["name"]]
    assert len(cases) == 2
    for case in cases:
        fields = [case_value(f).astype(np.float64) for f in case["inputs"]["fields"]]
        weights = case["options"]["scaleWeights"]
        l1 = case["options"].get("penalty") == "l1"
        want = sum(w * _numpy_grad(f, l1) for f, w in zip(fields[len(fields) - len(weights) :], weights))
        assert abs(case["expected"]["loss"] - want) < 1e-12, case["name"]
