"""voxelmorph-encoder — VoxelMorph-style U-Net encoder on the concatenated pair.

Level 0: Conv3d(2C→c0, k3) + LeakyReLU at full resolution; level l > 0: MaxPool3d(2), Conv3d(c_{l−1}→c_l,
k3) + LeakyReLU. One joint network, so ``forward(moving, fixed)`` returns the same pyramid (list of
tensors ``(N, c_l, K/2^l, J/2^l, I/2^l)``, finest first) as both the moving and the fixed stream.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from llmed.nn import initialise


class ConvAct(nn.Sequential):
    """One 3×3×3 convolution (padding 1, bias) and a LeakyReLU: VoxelMorph's ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float):
        super().__init__(nn.Conv3d(in_channels, out_channels, 3, padding=1), nn.LeakyReLU(negative_slope))


class VoxelMorphEncoder(nn.Module):
    def __init__(self, image_channels: int, channels: list[int], negative_slope: float):
        super().__init__()
        self.levels = nn.ModuleList()
        previous = 2 * image_channels
        for lvl, c in enumerate(channels):
            conv = ConvAct(previous, c, negative_slope)
            self.levels.append(conv if lvl == 0 else nn.Sequential(nn.MaxPool3d(2), conv))
            previous = c
        self.factor = 2 ** (len(channels) - 1)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor):
        # Run-time tensor check: the shape rule checked the configured grid; this names a wrongly sized image.
        bad = [n for n in moving.shape[2:] if n % self.factor]
        if bad:
            raise ValueError(f"image {tuple(moving.shape[2:])} (K, J, I) is not divisible by {self.factor}, which the pyramid needs")
        x = torch.cat([moving, fixed], dim=1)
        pyramid = []
        for level in self.levels:
            x = level(x)
            pyramid.append(x)
        return pyramid, pyramid


def build(options: dict, inputs: dict) -> nn.Module:
    channels = [int(c) for c in options["channels"]]
    image_channels = int(inputs["image"]["channels"])
    slope = float(options["negativeSlope"])
    return initialise(VoxelMorphEncoder(image_channels, channels, slope), str(options["init"]), slope)
