"""adapter0 — visual tokens → LLM width (spec §1.2 llama_block 0–1, §2.4).

    y = post(W₂ · post(W₁ t + b₁) + b₂),   post = [TokenInstanceNorm] → [LeakyReLU]

LLaMA-Reg: norm 'none', activation 'none' (a purely linear 512→1024→4096 map). LLM-Morph: norm
'instance' (each channel normalised over the L tokens — not over features) and 'leaky-relu'.
``hidden`` defaults to 2 × the input width. ``forward(tokens (N, L, C_in)) -> (N, L, out)``.
"""
from __future__ import annotations

import torch.nn as nn

from llmed.nn import TokenInstanceNorm


def _post(width: int, norm: str, activation: str, slope: float) -> list[nn.Module]:
    mods: list[nn.Module] = []
    if norm == "instance":
        mods.append(TokenInstanceNorm(width))
    elif norm != "none":
        raise ValueError(f"adapter0 norm must be 'none' or 'instance', got {norm!r}")
    if activation == "leaky-relu":
        mods.append(nn.LeakyReLU(slope))
    elif activation != "none":
        raise ValueError(f"adapter0 activation must be 'none' or 'leaky-relu', got {activation!r}")
    return mods


def build(options: dict, inputs: dict) -> nn.Module:
    width = int(inputs["tokens"]["width"])
    hidden = int(options.get("hidden") or 2 * width)
    out = int(options["out"])
    norm, act, slope = options.get("norm", "none"), options.get("activation", "none"), float(options.get("negativeSlope", 0.2))
    return nn.Sequential(nn.Linear(width, hidden), *_post(hidden, norm, act, slope),
                         nn.Linear(hidden, out), *_post(out, norm, act, slope))
