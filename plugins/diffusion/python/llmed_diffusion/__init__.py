"""diffusion — smoothness term ``Σ_s w_s · Grad_p(φ_s)`` (VoxelMorph Grad per scale; the config's loss
weight is λ).

`build(options, inputs)` returns an nn.Module with `forward(outputs, batch) -> scalar tensor`; the scale
weighting comes from ``llmed.losses`` (shared by every loss plugin).
"""

from __future__ import annotations

import torch

from llmed.losses import ScaleWeightedLoss

__all__ = ["gradient_penalty", "DiffusionLoss", "build"]


def gradient_penalty(field: torch.Tensor, penalty: str = "l2") -> torch.Tensor:
    """VoxelMorph Grad: ``(mean(∂_i u^p) + mean(∂_j u^p) + mean(∂_k u^p)) / 3``, forward differences in
    voxels of the field's own grid, ``p = 2`` (squared, 'l2' — LLaMA-Reg's smoothness loss) or
    ``|·|`` ('l1')."""
    diffs = [field[:, :, 1:] - field[:, :, :-1], field[:, :, :, 1:] - field[:, :, :, :-1], field[:, :, :, :, 1:] - field[:, :, :, :, :-1]]
    f = (lambda d: d * d) if penalty == "l2" else torch.abs
    return sum(torch.mean(f(d)) for d in diffs) / 3.0


class DiffusionLoss(ScaleWeightedLoss):
    """``Σ_s w_s · Grad_p(φ_s)``; ``penalty`` is 'l2' or 'l1' (the schema's enum)."""

    def __init__(self, options: dict):
        super().__init__(options)
        self.penalty = str(self.options["penalty"])

    def term(self, s, outputs, batch):
        return gradient_penalty(outputs["fields"][s], self.penalty)


def build(options: dict, inputs: dict | None = None) -> DiffusionLoss:
    return DiffusionLoss(options)
