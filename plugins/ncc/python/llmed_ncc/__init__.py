"""ncc — loss term ``−Σ_s w_s · mean cc(m∘φ_s, f_s)`` over ``window³`` neighbourhoods (VoxelMorph NCC).

`build(options, inputs)` returns an nn.Module with `forward(outputs, batch) -> scalar tensor`; the scale
weighting and the fixed image per scale come from ``llmed.losses`` (shared by every loss plugin).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llmed.losses import ScaleWeightedLoss

__all__ = ["local_ncc", "NCCLoss", "build"]


def local_ncc(a: torch.Tensor, b: torch.Tensor, window: int = 9, eps: float = 1e-5) -> torch.Tensor:
    """Mean local normalised cross-correlation, VoxelMorph's definition (cc ∈ [0, 1], higher = better).

    Over the ``window³`` neighbourhood W(p) (zero padded at the borders), with n = window³:
    ``cross = Σab − μ_b Σa − μ_a Σb + μ_a μ_b n``, ``var_a = Σa² − 2μ_a Σa + μ_a² n`` (same
    for b), ``cc(p) = cross² / (var_a · var_b + eps)``; returns the mean of cc over voxels.
    """
    n, c = a.shape[:2]
    a = a.reshape(n * c, 1, *a.shape[2:])
    b = b.reshape(n * c, 1, *b.shape[2:])
    kernel = torch.ones(1, 1, window, window, window, device=a.device, dtype=a.dtype)
    pad = window // 2
    box = lambda x: F.conv3d(x, kernel, padding=pad)  # noqa: E731 — windowed sum
    sa, sb = box(a), box(b)
    saa, sbb, sab = box(a * a), box(b * b), box(a * b)
    size = float(window**3)
    ma, mb = sa / size, sb / size
    cross = sab - mb * sa - ma * sb + ma * mb * size
    var_a = saa - 2 * ma * sa + ma * ma * size
    var_b = sbb - 2 * mb * sb + mb * mb * size
    cc = cross * cross / (var_a * var_b + eps)
    return cc.mean()


class NCCLoss(ScaleWeightedLoss):
    """``−Σ_s w_s · mean cc_n(m∘φ_s, f_s)`` with an ``window³`` window (VoxelMorph NCC)."""

    def __init__(self, options: dict):
        super().__init__(options)
        self.window = int(self.options["window"])

    def term(self, s, outputs, batch):
        return -local_ncc(outputs["warped"][s], batch["fixed_pyramid"][s], self.window)


def build(options: dict, inputs: dict | None = None) -> NCCLoss:
    return NCCLoss(options)
