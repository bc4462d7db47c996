"""dual-pyramid — two convolutional streams (moving, fixed) → feature pyramids at full … 1/2^(n−1).

Level 0 is ConvBlock(in→c0); level l > 0 is DownConv(c_{l−1}→c_l) (stride 2, no activation) followed by
ConvBlock(c_l→c_l), except the last level, which is the DownConv alone (LLaMA-Reg's bottleneck,
spec §1.2 E1–E5). ``shared`` uses one stream for both images (Dual-PRNet++ style weight sharing).

``forward(moving, fixed) -> (moving_pyramid, fixed_pyramid)``, each a list of tensors (N, c_l, K/2^l,
J/2^l, I/2^l), finest first.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from llmed.nn import ConvBlock, DownConv, initialise


class PyramidStream(nn.Module):
    """One image → its feature pyramid (finest first)."""

    def __init__(self, in_channels: int, channels: list[int], negative_slope: float):
        super().__init__()
        self.levels = nn.ModuleList()
        for lvl, c in enumerate(channels):
            if lvl == 0:
                self.levels.append(ConvBlock(in_channels, c, negative_slope))
            elif lvl == len(channels) - 1:
                self.levels.append(DownConv(channels[lvl - 1], c))
            else:
                self.levels.append(nn.Sequential(DownConv(channels[lvl - 1], c), ConvBlock(c, c, negative_slope)))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        out, x = [], image
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


class DualPyramid(nn.Module):
    def __init__(self, in_channels: int, channels: list[int], shared: bool, negative_slope: float):
        super().__init__()
        self.moving_stream = PyramidStream(in_channels, channels, negative_slope)
        # with sharing, the fixed stream *is* the moving stream (one set of weights)
        self.fixed_stream = self.moving_stream if shared else PyramidStream(in_channels, channels, negative_slope)
        self.shared = shared
        self.factor = 2 ** (len(channels) - 1)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor):
        # Run-time tensor check: the shape rule checked the configured grid; this names a wrongly sized image.
        bad = [n for n in moving.shape[2:] if n % self.factor]
        if bad:
            raise ValueError(f"image {tuple(moving.shape[2:])} (K, J, I) is not divisible by {self.factor}, which the pyramid needs")
        return self.moving_stream(moving), self.fixed_stream(fixed)


def build(options: dict, inputs: dict) -> nn.Module:
    channels = [int(c) for c in options["channels"]]
    in_channels = int(inputs["image"]["channels"])
    slope = float(options["negativeSlope"])
    return initialise(DualPyramid(in_channels, channels, bool(options["shared"]), slope), str(options["init"]), slope)
