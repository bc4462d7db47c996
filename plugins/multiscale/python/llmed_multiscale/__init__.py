"""multiscale — LLaMA-Reg's step-1 multi-scale decoder (spec §1.2, §1.4; LLM-Morph §2.5).

S1 fuses at the coarsest stage, every finer stage fuses [moving skip, fixed skip, up(previous
features), adapter map, (upsampled field, warped moving)] and predicts a residual field,
φ_s = up(φ_{s−1}) + Δ_s. ``forward(moving, fixed, moving_pyramid, fixed_pyramid, stage_maps) ->
{'fields', 'warped', 'features'}`` (coarse → fine). The cascade plugin stacks these decoders
(``fuse_previous=True`` for its later steps) and imports :class:`MultiscaleDecoder` from here.

The stage/encoder geometry (at least two stages, scales halving to full resolution, each stage on an
encoder level of the same grid) is checked by the TypeScript shape rule (``multiscaleFields`` in
``src/index.ts``) before any of this runs; the constructor only looks the levels up.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from llmed.nn import ConvBlock, FlowHead, initialise, upsample_field, warp

__all__ = ["MultiscaleDecoder", "build"]


class MultiscaleDecoder(nn.Module):
    """LLaMA-Reg's non-U-shaped multi-scale decoder for one cascade step (spec §1.2, §1.4).

    Stages ``s = 0 … S−1`` run coarsest (1/8 for LLaMA-Reg) to full resolution; each stage's width
    ``w_s`` is the encoder's channel count at that scale and ``A_s`` is the stage adapter map.

    First step (``fuse_previous=False``)::

        F_0 = ConvBlock([m_0, f_0, A_0])                                  (no field)
        F_1 = ConvBlock([m_1, f_1, up(F_0), A_1]);             φ_1 = Δ_1
        F_s = ConvBlock([m_s, f_s, up(F_{s−1}), A_s, φ̂, m∘φ̂]); φ_s = φ̂ + Δ_s,  s ≥ 2

    Later cascade steps (``fuse_previous=True``) replace the encoder skips by the previous step's fused
    features ``F'_s`` and add their residual to the previous step's field *at the same scale*::

        F_0 = ConvBlock([F'_0, A_0])
        F_1 = ConvBlock([F'_1, up(F_0), A_1]);             φ_1 = φ'_1 + Δ_1
        F_s = ConvBlock([F'_s, up(F_{s−1}), A_s, φ̂, m∘φ̂]); φ_s = φ'_s + Δ_s,  s ≥ 2

    where ``m_s``/``f_s`` are the moving/fixed encoder features at the stage's scale, ``up`` a
    ConvTranspose3d(k2, s2) to ``w_s`` channels, ``φ̂ = upsample_field(φ_{s−1})`` (×2 values when
    ``rescale_upsampled_field``), ``m∘φ̂`` the full-resolution moving image sampled on the stage's grid,
    and ``Δ_s = FlowHead(F_s)``. Fields are returned for stages 1…S−1 (1/4, 1/2, full for LLaMA-Reg),
    each with the moving image warped by it on its own grid.

    With ``field_scale`` k > 1 the stages end at 1/k and one more field is returned last: the finest stage's
    field upsampled to the moving image's grid, ``φ = upsample_field(φ_{S−1})`` (displacements rescaled
    whatever ``rescale_upsampled_field`` says — that flag reproduces a bug of the released code, and this
    path is not in it), so there is no full-resolution stage (VoxelMorph's ``int_downsize``).
    """

    steps = 1
    multi_step = False

    def __init__(
        self,
        pyramid_levels: Sequence[dict],
        stage_levels: Sequence[dict],
        *,
        image_channels: int,
        flow_hidden: int,
        negative_slope: float,
        rescale_upsampled_field: bool,
        init: str,
        field_scale: int = 1,
        fuse_previous: bool = False,
    ):
        super().__init__()
        level_of_scale = {int(lvl["scale"]): n for n, lvl in enumerate(pyramid_levels)}
        self.scales = [int(s["scale"]) for s in stage_levels]
        self.level_index = [level_of_scale[s] for s in self.scales]
        widths = [int(pyramid_levels[n]["channels"]) for n in self.level_index]
        self.widths = widths
        self.fuse_previous = fuse_previous
        self.rescale_upsampled_field = rescale_upsampled_field
        self.image_channels = image_channels
        self.field_scale = field_scale

        skip = (lambda w: w) if fuse_previous else (lambda w: 2 * w)
        self.fuse = nn.ModuleList()
        self.up = nn.ModuleList([nn.Identity()])  # stage 0 has no predecessor
        self.flow = nn.ModuleList([nn.Identity()])  # stage 0 predicts no field
        for s, (w, st) in enumerate(zip(widths, stage_levels)):
            a = int(st["channels"])
            if s == 0:
                self.fuse.append(ConvBlock(skip(w) + a, w, negative_slope))
                continue
            self.up.append(nn.ConvTranspose3d(widths[s - 1], w, kernel_size=2, stride=2))
            extra = (3 + image_channels) if s >= 2 else 0
            self.fuse.append(ConvBlock(skip(w) + w + a + extra, w, negative_slope))
            self.flow.append(FlowHead(w, flow_hidden, init))
        initialise(self.fuse, init, negative_slope)
        initialise(self.up, init, negative_slope)

    def forward(
        self,
        moving: torch.Tensor,
        fixed: torch.Tensor | None,
        moving_pyramid: Sequence[torch.Tensor] | None,
        fixed_pyramid: Sequence[torch.Tensor] | None,
        stage_maps: Sequence[torch.Tensor],
        previous: dict | None = None,
    ) -> dict:
        """Returns ``{'fields': [φ_1…], 'warped': [m∘φ_1…], 'features': [F_0…]}`` (coarse → fine)."""
        # Run-time guards (not shape rules): fewer stage maps would silently return fewer fields, and a
        # later cascade step without its predecessor has nothing to add its residual to.
        if len(stage_maps) != len(self.fuse):
            raise ValueError(f"decoder built for {len(self.fuse)} stage maps, got {len(stage_maps)}")
        if self.fuse_previous and previous is None:
            raise ValueError("a later cascade step needs the previous step's outputs")
        features: list[torch.Tensor] = []
        fields: list[torch.Tensor] = []
        warped: list[torch.Tensor] = []
        for s, a in enumerate(stage_maps):
            if self.fuse_previous:
                parts = [previous["features"][s]]
            else:
                lvl = self.level_index[s]
                parts = [moving_pyramid[lvl], fixed_pyramid[lvl]]
            if s > 0:
                parts.append(self.up[s](features[-1]))
            parts.append(a)
            if s >= 2:
                carried = upsample_field(fields[-1], self.rescale_upsampled_field)
                parts += [carried, warp(moving, carried)]
            fused = self.fuse[s](torch.cat(parts, dim=1))
            features.append(fused)
            if s == 0:
                continue
            delta = self.flow[s](fused)
            if self.fuse_previous:
                field = previous["fields"][s - 1] + delta
            elif s >= 2:
                field = carried + delta
            else:
                field = delta
            fields.append(field)
            warped.append(warp(moving, field))
        if self.field_scale > 1:
            field = upsample_field(fields[-1], True, size=moving.shape[2:])
            fields.append(field)
            warped.append(warp(moving, field))
        return {"fields": fields, "warped": warped, "features": features}


def decoder_args(options: dict, inputs: dict) -> dict:
    """The constructor arguments from the filled-in options and the node's input shapes (cascade uses it too)."""
    return {
        "pyramid_levels": inputs["pyramid"]["levels"],
        "stage_levels": inputs["stages"]["stages"],
        "image_channels": int(inputs["image"]["channels"]),
        "flow_hidden": int(options["flowHidden"]),
        "negative_slope": float(options["negativeSlope"]),
        "rescale_upsampled_field": bool(options["rescaleUpsampledField"]),
        "init": str(options["init"]),
        "field_scale": int(options["fieldScale"]),
    }


def build(options: dict, inputs: dict) -> MultiscaleDecoder:
    return MultiscaleDecoder(**decoder_args(options, inputs))
