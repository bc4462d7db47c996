"""voxelmorph-decoder — VoxelMorph-style U-Net decoder predicting one full-resolution field.

``forward(moving, fixed, moving_pyramid, fixed_pyramid, stage_maps) -> {'fields': [φ], 'warped': [m∘φ]}``.

    x = stage_maps[0]                                       (coarsest stage, scale s₀)
    for each encoder scale s = s₀, s₀/2, …, 1:
        x = up×2(x) if s < s₀                               (nearest, as VoxelMorph)
        x = ConvAct([x, moving skip_s, (fixed skip_s), (stage map at s)])
    x = ConvAct(x) for each ``final`` width
    φ = Conv3d(x → 3)  (weights N(0, 1e-5), bias 0)
    φ = scaling and squaring of φ when ``integrationSteps`` > 0

φ is in voxels of the full-resolution grid, channel c along NIfTI axis c (llmed's field convention).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmed.nn import initialise, warp


class ConvAct(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, negative_slope: float):
        super().__init__(nn.Conv3d(in_channels, out_channels, 3, padding=1), nn.LeakyReLU(negative_slope))


def integrate_velocity(velocity: torch.Tensor, steps: int) -> torch.Tensor:
    """Scaling and squaring: u = v / 2^steps, then ``steps`` times u ← u + u∘(id + u)."""
    u = velocity / (2**steps)
    for _ in range(steps):
        u = u + warp(u, u)
    return u


class VoxelMorphDecoder(nn.Module):
    steps = 1
    multi_step = False

    def __init__(
        self, pyramid_levels: Sequence[dict], stage_levels: Sequence[dict], *, channels: Sequence[int], final: Sequence[int], skips: str, integration_steps: int, negative_slope: float, init: str
    ):
        super().__init__()
        # The geometry (stage maps on encoder levels, scales halving to full resolution, one width per
        # scale, skips in the schema's enum) is the TypeScript shape rule's to check (src/index.ts).
        first = int(stage_levels[0]["scale"])
        stage_scales = [int(s["scale"]) for s in stage_levels]
        by_scale = {int(l["scale"]): (n, l) for n, l in enumerate(pyramid_levels)}
        scales = sorted((s for s in by_scale if s <= first), reverse=True)
        self.skips = skips
        self.integration_steps = int(integration_steps)
        self.level_index = [by_scale[s][0] for s in scales]
        # which stage map (index) joins at each decoder scale, besides the starting one
        self.extra_stage = [stage_scales.index(s) if s in stage_scales[1:] else None for s in scales]
        self.convs = nn.ModuleList()
        width = int(stage_levels[0]["channels"])
        for k, s in enumerate(scales):
            skip = int(by_scale[s][1]["channels"]) * (2 if skips == "both" else 1)
            extra = int(stage_levels[self.extra_stage[k]]["channels"]) if self.extra_stage[k] is not None else 0
            self.convs.append(ConvAct(width + skip + extra, int(channels[k]), negative_slope))
            width = int(channels[k])
        self.final = nn.Sequential(*[ConvAct(a, b, negative_slope) for a, b in zip([width, *final[:-1]], final)]) if final else nn.Identity()
        width = int(final[-1]) if final else width
        initialise(self, init, negative_slope)
        self.flow = nn.Conv3d(width, 3, 3, padding=1)
        nn.init.normal_(self.flow.weight, mean=0.0, std=1e-5)
        nn.init.zeros_(self.flow.bias)

    def forward(self, moving, fixed, moving_pyramid, fixed_pyramid, stage_maps):
        x = stage_maps[0]
        for k, conv in enumerate(self.convs):
            if k > 0:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            n = self.level_index[k]
            parts = [x, moving_pyramid[n]]
            if self.skips == "both":
                parts.append(fixed_pyramid[n])
            if self.extra_stage[k] is not None:
                parts.append(stage_maps[self.extra_stage[k]])
            x = conv(torch.cat(parts, dim=1))
        field = self.flow(self.final(x))
        if self.integration_steps:
            field = integrate_velocity(field, self.integration_steps)
        return {"fields": [field], "warped": [warp(moving, field)], "features": [x]}


def build(options: dict, inputs: dict) -> nn.Module:
    return VoxelMorphDecoder(
        inputs["pyramid"]["levels"],
        inputs["stages"]["stages"],
        channels=[int(c) for c in options["channels"]],
        final=[int(c) for c in options["final"]],
        skips=str(options["skips"]),
        integration_steps=int(options["integrationSteps"]),
        negative_slope=float(options["negativeSlope"]),
        init=str(options["init"]),
    )
