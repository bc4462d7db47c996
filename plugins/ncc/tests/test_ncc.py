"""Local NCC is 1 for an image against itself and against a scaled copy (moved from test_model_assemble.py)."""

from __future__ import annotations

import pytest
import torch
from llmed_ncc import local_ncc


def test_local_ncc_is_one_for_identical_and_scaled_images():
    a = torch.rand(2, 1, 8, 8, 8)
    assert local_ncc(a, a, 3).item() == pytest.approx(1.0, abs=1e-3)
    assert local_ncc(a, 2 * a, 3).item() == pytest.approx(1.0, abs=1e-3)


def _box(x, r):
    """Sum over the (2r+1)³ window, zero padded: the numpy twin of the convolution with a box kernel."""
    import numpy as np

    p = np.pad(x, r)
    out = np.zeros_like(x)
    k, j, i = x.shape
    for a in range(2 * r + 1):
        for b in range(2 * r + 1):
            for c in range(2 * r + 1):
                out += p[a : a + k, b : b + j, c : c + i]
    return out


def _numpy_ncc(a, b, window, eps=1e-5):
    import numpy as np

    r, n = window // 2, float(window**3)
    sa, sb, saa, sbb, sab = _box(a, r), _box(b, r), _box(a * a, r), _box(b * b, r), _box(a * b, r)
    ma, mb = sa / n, sb / n
    cross = sab - mb * sa - ma * sb + ma * mb * n
    va = saa - 2 * ma * sa + ma * ma * n
    vb = sbb - 2 * mb * sb + mb * mb * n
    return float(np.mean(cross * cross / (va * vb + eps)))


def test_the_cases_expect_the_numpy_value():
    from pathlib import Path

    import numpy as np

    from llmed.plugin_cases import case_value, read_cases

    cases = read_cases(Path(__file__).parents[1])
    assert cases
    for case in cases:
        w = case_value(case["inputs"]["warped"][-1]).astype(np.float64)[0, 0]
        f = case_value(case["inputs"]["fixed"]).astype(np.float64)[0, 0]
        assert abs(case["expected"]["loss"] + _numpy_ncc(w, f, case["options"]["window"])) < 1e-12, case["name"]
