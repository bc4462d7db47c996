"""Soft Dice of a segmentation against itself is −1 (moved from test_model_assemble.py)."""

from __future__ import annotations

import pytest
import torch
from llmed_dice_loss import soft_dice


def test_soft_dice_of_identical_labels_is_minus_one():
    seg = torch.nn.functional.one_hot(torch.randint(0, 3, (1, 6, 6, 6)), 3).permute(0, 4, 1, 2, 3).float()
    assert soft_dice(seg, seg, ignore=[0]).item() == pytest.approx(-1.0)


def test_the_numpy_case_expects_the_numpy_value():
    from pathlib import Path

    import numpy as np

    from llmed.plugin_cases import case_value, read_cases

    cases = [c for c in read_cases(Path(__file__).parents[1]) if "(numpy)" in c["name"]]
    assert len(cases) == 1
    for case in cases:
        # a zero field samples the moving labels at the grid points themselves: warped == moving
        p = case_value(case["inputs"]["moving_labels"]).astype(np.float64)[:, 1:]  # label 0 ignored (the default)
        t = case_value(case["inputs"]["fixed_labels"]).astype(np.float64)[:, 1:]
        dice = 2 * (p * t).sum(axis=(2, 3, 4)) / np.maximum((p + t).sum(axis=(2, 3, 4)), 1e-5)
        assert abs(case["expected"]["loss"] + float(np.mean(dice))) < 1e-12, case["name"]
