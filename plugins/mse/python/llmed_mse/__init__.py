"""mse — loss term. See `llmed.losses.MSELoss`: ``Σ_s w_s · mean((m∘φ_s − f_s)²)`` (LLaMA-Reg, spec §1.5).

`build(options, inputs)` returns an nn.Module with `forward(outputs, batch) -> scalar tensor`.
"""
from __future__ import annotations

from llmed.losses import MSELoss


def build(options: dict, inputs: dict | None = None) -> MSELoss:
    return MSELoss(options)
