"""cascade — LLaMA-Reg's cascaded decoders (spec §1.4).

Step 1 is the multiscale decoder; each later step k is a ``MultiscaleDecoder(fuse_previous=True)``: it
fuses step k−1's features instead of the encoder skips and adds its residual to step k−1's field at
every scale (superposition, not composition): φ_s^(k) = φ_s^(k−1) + Δ_s^(k).

The assembler gives each step its own tokens position embedding, block adapters and stage adapters and
shares the encoder and the LLM layers; this module holds the per-step decoders (``decoders[k]``).
``forward(moving, fixed, moving_pyramid, fixed_pyramid, stage_maps_per_step)`` runs as many steps as
stage-map lists are given (fewer than ``steps`` while earlier steps are being trained) and returns the
last step's ``{'fields', 'warped', 'features', 'steps'}``.
"""
from __future__ import annotations

import torch.nn as nn

from llmed.nn import MultiscaleDecoder


class CascadeDecoder(nn.Module):
    multi_step = True

    def __init__(self, steps: int, **decoder_args):
        super().__init__()
        if steps < 1:
            raise ValueError(f"cascade needs at least 1 step, got {steps}")
        self.steps = steps
        self.decoders = nn.ModuleList(
            [MultiscaleDecoder(fuse_previous=k > 0, **decoder_args) for k in range(steps)])

    def forward(self, moving, fixed, moving_pyramid, fixed_pyramid, stage_maps_per_step):
        if not 1 <= len(stage_maps_per_step) <= self.steps:
            raise ValueError(f"cascade of {self.steps} steps got stage maps for {len(stage_maps_per_step)} steps")
        out = None
        for decoder, maps in zip(self.decoders, stage_maps_per_step):
            out = decoder(moving, fixed, moving_pyramid, fixed_pyramid, maps, previous=out)
        return {**out, "steps": len(stage_maps_per_step)}


def build(options: dict, inputs: dict) -> CascadeDecoder:
    return CascadeDecoder(
        int(options.get("steps", 3)),
        pyramid_levels=inputs["pyramid"]["levels"], stage_levels=inputs["stages"]["stages"],
        image_channels=int((inputs.get("image") or {}).get("channels", 1)),
        flow_hidden=int(options.get("flowHidden", 16)),
        negative_slope=float(options.get("negativeSlope", 0.2)),
        rescale_upsampled_field=bool(options.get("rescaleUpsampledField", True)),
        init=str(options.get("init", "he")),
    )
