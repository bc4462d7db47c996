"""dice-loss — soft Dice of one-hot moving labels warped trilinearly by each field against the one-hot
fixed labels (MambaMorph / LLM-Morph); by the schema's default, the final field only.

`build(options, inputs)` returns an nn.Module with `forward(outputs, batch) -> scalar tensor`; the scale
weighting comes from ``llmed.losses`` (shared by every loss plugin).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from llmed.losses import ScaleWeightedLoss
from llmed.nn import resize_image, warp

__all__ = ["soft_dice", "DiceLoss", "build"]


def soft_dice(pred: torch.Tensor, target: torch.Tensor, ignore: Sequence[int] = (0,), eps: float = 1e-5) -> torch.Tensor:
    """Negative mean soft Dice over label channels not in ``ignore`` (MambaMorph's Dice loss).

    ``pred``/``target`` are ``(N, L, K, J, I)`` soft/one-hot labels, channel ``l`` = label index ``l``.
    ``L = −mean_{n, l∉ignore} 2Σ(ŝ·s) / max(Σ(ŝ + s), eps)``.
    """
    # Kept at run time: the label count comes from the data, and mismatched maps would broadcast silently.
    if pred.shape != target.shape:
        raise ValueError(f"dice: warped labels {tuple(pred.shape)} and fixed labels {tuple(target.shape)} differ")
    keep = [l for l in range(pred.shape[1]) if l not in set(int(i) for i in ignore)]
    if not keep:
        raise ValueError(f"dice: every one of the {pred.shape[1]} label channels is ignored ({list(ignore)})")
    p, t = pred[:, keep], target[:, keep]
    dims = tuple(range(2, pred.dim()))
    num = 2 * (p * t).sum(dims)
    den = torch.clamp((p + t).sum(dims), min=eps)
    return -torch.mean(num / den)


class DiceLoss(ScaleWeightedLoss):
    """Soft Dice of one-hot moving labels warped *trilinearly* by φ_s against the fixed labels at scale
    ``s``. Needs ``batch['moving_labels']`` and ``batch['fixed_labels']`` (one-hot float
    ``(N, L, K, J, I)``, channel = label index)."""

    uses_labels = True

    def __init__(self, options: dict):
        super().__init__(options)
        self.ignore = [int(i) for i in self.options["ignore"]]

    def term(self, s, outputs, batch):
        ml, fl = batch.get("moving_labels"), batch.get("fixed_labels")
        if ml is None or fl is None:
            raise KeyError("the dice loss needs batch['moving_labels'] and batch['fixed_labels'] (one-hot float, (N, L, K, J, I))")
        field = outputs["fields"][s]
        warped = warp(ml.to(field.dtype), field, mode="bilinear")
        return soft_dice(warped, resize_image(fl.to(field.dtype), field.shape[2:]), self.ignore)


def build(options: dict, inputs: dict | None = None) -> DiceLoss:
    return DiceLoss(options)
