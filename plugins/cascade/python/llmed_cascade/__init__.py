"""cascade — LLaMA-Reg's cascaded decoders (spec §1.4).

Step 1 is the multiscale decoder; each later step k is a ``MultiscaleDecoder(fuse_previous=True)``: it
fuses step k−1's features instead of the encoder skips and adds its residual to step k−1's field at
every scale (superposition, not composition): φ_s^(k) = φ_s^(k−1) + Δ_s^(k).

The assembler gives each step its own tokens position embedding, block adapters and stage adapters and
shares the encoder and the LLM layers; this module holds the per-step decoders (``decoders[k]``).
``forward(moving, fixed, moving_pyramid, fixed_pyramid, stage_maps_per_step)`` runs as many steps as
stage-map lists are given (fewer than ``steps`` while earlier steps are being trained) and returns the
last step's ``{'fields', 'warped', 'features', 'steps'}``.

The step decoder is the multiscale plugin's, as the TypeScript side imports ``@llmed/plugin-multiscale``:
its python package is the sibling folder ``plugins/multiscale/python``, put on ``sys.path`` here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch.nn as nn

_MULTISCALE_ROOT = Path(__file__).resolve().parents[3] / "multiscale" / "python"
if str(_MULTISCALE_ROOT) not in sys.path:
    sys.path.insert(0, str(_MULTISCALE_ROOT))

from llmed_multiscale import MultiscaleDecoder, decoder_args  # noqa: E402 — after its folder is on sys.path

__all__ = ["CascadeDecoder", "build"]


class CascadeDecoder(nn.Module):
    multi_step = True

    def __init__(self, steps: int, **decoder_kwargs):
        super().__init__()
        self.steps = steps
        self.decoders = nn.ModuleList([MultiscaleDecoder(fuse_previous=k > 0, **decoder_kwargs) for k in range(steps)])

    def forward(self, moving, fixed, moving_pyramid, fixed_pyramid, stage_maps_per_step):
        # Run-time guard: the number of steps run depends on the training phase, not on a shape rule.
        if not 1 <= len(stage_maps_per_step) <= self.steps:
            raise ValueError(f"cascade of {self.steps} steps got stage maps for {len(stage_maps_per_step)} steps")
        out = None
        for decoder, maps in zip(self.decoders, stage_maps_per_step):
            out = decoder(moving, fixed, moving_pyramid, fixed_pyramid, maps, previous=out)
        return {**out, "steps": len(stage_maps_per_step)}


def build(options: dict, inputs: dict) -> CascadeDecoder:
    return CascadeDecoder(int(options["steps"]), **decoder_args(options, inputs))
