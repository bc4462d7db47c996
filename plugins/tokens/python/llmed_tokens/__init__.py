"""tokens — the moving and fixed coarsest feature maps → one token sequence (spec §1.2 T1–T3).

    x = concat([m_L, f_L], channels)                       (N, 2C, K, J, I)
    t = flatten "N C K J I → N (K J I) C"                   (N, L, 2C), L = K·J·I, i fastest
    t = t + P                                                P learnable (1, L, 2C), zeros at init

The position embedding lives in the visual feature space before Adapter0; ``positionEmbedding: false``
drops it (LLaMA-Reg Ablation 2). ``forward(moving_pyramid, fixed_pyramid) -> tokens``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from llmed.nn import tokens_from_volume, torch_spatial


class Tokens(nn.Module):
    def __init__(self, channels: int, grid_ijk: list[int], level: int, position_embedding: bool):
        super().__init__()
        self.level = level
        self.grid_kji = torch_spatial(grid_ijk)
        self.length = math.prod(grid_ijk)
        self.width = 2 * channels
        self.position_embedding = nn.Parameter(torch.zeros(1, self.length, self.width)) if position_embedding else None

    def forward(self, moving_pyramid, fixed_pyramid) -> torch.Tensor:
        m, f = moving_pyramid[self.level], fixed_pyramid[self.level]
        # Run-time tensor check: without a position embedding a map on another grid would flatten into a
        # sequence of another length and pass through the token layers unnoticed.
        if tuple(m.shape[2:]) != self.grid_kji or 2 * m.shape[1] != self.width:
            raise ValueError(f"tokens built for {self.width // 2}-channel maps on grid (K, J, I) {self.grid_kji}, got {tuple(m.shape[1:])}")
        tokens = tokens_from_volume(torch.cat([m, f], dim=1))
        if self.position_embedding is not None:
            tokens = tokens + self.position_embedding
        return tokens


def build(options: dict, inputs: dict) -> nn.Module:
    # The shape rule has checked that ``grid`` (when given) is the chosen level's grid.
    level = int(options["level"])
    lvl = inputs["pyramid"]["levels"][level]
    return Tokens(int(lvl["channels"]), list(lvl["spatial"]), level, bool(options["positionEmbedding"]))
