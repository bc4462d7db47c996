"""multiscale — LLaMA-Reg's step-1 multi-scale decoder (spec §1.2; LLM-Morph §2.5).

The math is in ``llmed.nn.MultiscaleDecoder``: S1 fuses at the coarsest stage, every finer stage fuses
[moving skip, fixed skip, up(previous features), adapter map, (upsampled field, warped moving)] and
predicts a residual field, φ_s = up(φ_{s−1}) + Δ_s. ``forward(moving, fixed, moving_pyramid,
fixed_pyramid, stage_maps) -> {'fields', 'warped', 'features'}`` (coarse → fine).
"""
from __future__ import annotations

from llmed.nn import MultiscaleDecoder


def build(options: dict, inputs: dict) -> MultiscaleDecoder:
    return MultiscaleDecoder(
        inputs["pyramid"]["levels"], inputs["stages"]["stages"],
        image_channels=int((inputs.get("image") or {}).get("channels", 1)),
        flow_hidden=int(options.get("flowHidden", 16)),
        negative_slope=float(options.get("negativeSlope", 0.2)),
        rescale_upsampled_field=bool(options.get("rescaleUpsampledField", True)),
        init=str(options.get("init", "he")),
    )
