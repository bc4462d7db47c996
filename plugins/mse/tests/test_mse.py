"""The MSE loss: ``smoothing`` blurs both images before the difference; 0 is plain MSE.

(Moved from bridge/python/tests/test_model_nn.py with the loss.)
"""

from __future__ import annotations

import torch
from llmed_mse import MSELoss, gaussian_smooth


def test_mse_smoothing_blurs_both_images_and_zero_is_plain_mse():
    torch.manual_seed(0)
    constant = torch.full((1, 1, 5, 6, 7), 3.0)
    assert torch.allclose(gaussian_smooth(constant, 1.0), constant, atol=1e-5)  # replicated borders: no fall-off
    a, b = torch.rand(1, 1, 8, 8, 8), torch.rand(1, 1, 8, 8, 8)
    outputs = {"fields": [torch.zeros(1, 3, 8, 8, 8)], "warped": [a]}
    plain = MSELoss({"scaleWeights": [1], "smoothing": 0})(outputs, {"fixed": b, "moving": a})
    assert torch.allclose(plain, torch.mean((a - b) ** 2))
    smoothed = MSELoss({"scaleWeights": [1], "smoothing": 1.0})(outputs, {"fixed": b, "moving": a})
    # white noise loses most of its variance under a σ = 1 voxel Gaussian
    assert float(smoothed) < 0.2 * float(plain)
    assert torch.allclose(smoothed, torch.mean((gaussian_smooth(a, 1.0) - gaussian_smooth(b, 1.0)) ** 2))


def _numpy_mse(case: dict) -> float:
    """The loss of a case in numpy, independent of the torch code: the coarse fixed images of these cases
    are every (n−1)/(m−1)-th voxel, which is what the corner-aligned resize samples."""
    import numpy as np

    from llmed.plugin_cases import case_value

    fixed = case_value(case["inputs"]["fixed"]).astype(np.float64)
    warped = [case_value(w).astype(np.float64) for w in case["inputs"]["warped"]]
    weights = case["options"]["scaleWeights"]
    first = len(warped) - len(weights)
    total = 0.0
    for w, wt in zip(warped[first:], weights):
        step = [(n - 1) // (m - 1) for n, m in zip(fixed.shape[2:], w.shape[2:])]
        total += wt * float(np.mean((w - fixed[..., :: step[0], :: step[1], :: step[2]]) ** 2))
    return total


def test_the_numpy_cases_expect_the_numpy_value():
    from pathlib import Path

    from llmed.plugin_cases import read_cases

    cases = [c for c in read_cases(Path(__file__).parents[1]) if "(numpy)" in c["name"]]
    assert len(cases) == 2
    for case in cases:
        assert abs(case["expected"]["loss"] - _numpy_mse(case)) < 1e-12, case["name"]
