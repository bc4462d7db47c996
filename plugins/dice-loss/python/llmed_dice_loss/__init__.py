"""dice-loss — loss term. See `llmed.losses.DiceLoss`: soft Dice of one-hot moving labels warped
trilinearly by the final field against the one-hot fixed labels (MambaMorph / LLM-Morph).

`build(options, inputs)` returns an nn.Module with `forward(outputs, batch) -> scalar tensor`.
"""
from __future__ import annotations

from llmed.losses import DiceLoss


def build(options: dict, inputs: dict | None = None) -> DiceLoss:
    return DiceLoss(options)
