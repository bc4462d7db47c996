"""inner-mlp — LLaMA-Reg's inner adapter between two LLM passes (spec §1.2 llama_block 3–4).

    y = W₂ · act(W₁ t + b₁) + b₂,   act ∈ {identity (released code), GELU}

``out`` defaults to the input width. ``forward(tokens (N, L, W)) -> (N, L, out)``.
"""
from __future__ import annotations

import torch.nn as nn


def build(options: dict, inputs: dict) -> nn.Module:
    width = int(inputs["tokens"]["width"])
    hidden = int(options.get("hidden", 1024))
    out = int(options.get("out") or width)
    act = options.get("activation", "none")
    if act not in ("none", "gelu"):
        raise ValueError(f"inner-mlp activation must be 'none' or 'gelu', got {act!r}")
    mid = [nn.GELU()] if act == "gelu" else []
    return nn.Sequential(nn.Linear(width, hidden), *mid, nn.Linear(hidden, out))
