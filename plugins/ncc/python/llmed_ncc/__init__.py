"""ncc — loss term. See `llmed.losses.NCCLoss`: ``−Σ_s w_s · mean cc_n(m∘φ_s, f_s)`` with an ``window³`` window (VoxelMorph NCC).

`build(options, inputs)` returns an nn.Module with `forward(outputs, batch) -> scalar tensor`.
"""
from __future__ import annotations

from llmed.losses import NCCLoss


def build(options: dict, inputs: dict | None = None) -> NCCLoss:
    return NCCLoss(options)
