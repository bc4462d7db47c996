"""inner-mlp — LLaMA-Reg's inner adapter between two LLM passes (spec §1.2 llama_block 3–4).

    y = W₂ · act(W₁ t + b₁) + b₂,   act ∈ {identity (released code), GELU}

``out`` absent means the input width (``inputs["tokens"]["width"]``, the same value the shape rule gives
the output; a schema default cannot name it). ``forward(tokens (N, L, W)) -> (N, L, out)``.
"""

from __future__ import annotations

import torch.nn as nn


def build(options: dict, inputs: dict) -> nn.Module:
    width = int(inputs["tokens"]["width"])
    hidden = int(options["hidden"])
    out = int(options["out"]) if options.get("out") is not None else width
    mid = [nn.GELU()] if options["activation"] == "gelu" else []  # the schema's enum: 'none' or 'gelu'
    return nn.Sequential(nn.Linear(width, hidden), *mid, nn.Linear(hidden, out))
