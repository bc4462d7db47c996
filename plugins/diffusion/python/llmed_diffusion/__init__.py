"""diffusion — loss term. See `llmed.losses.DiffusionLoss`: ``Σ_s w_s · Grad_p(φ_s)`` (VoxelMorph Grad-l2 per scale; the config's loss weight is λ).

`build(options, inputs)` returns an nn.Module with `forward(outputs, batch) -> scalar tensor`.
"""
from __future__ import annotations

from llmed.losses import DiffusionLoss


def build(options: dict, inputs: dict | None = None) -> DiffusionLoss:
    return DiffusionLoss(options)
