"""adapter0 — visual tokens → LLM width (spec §1.2 llama_block 0–1, §2.4).

    y = post(W₂ · post(W₁ t + b₁) + b₂),   post = [TokenInstanceNorm] → [LeakyReLU]

LLaMA-Reg: norm 'none', activation 'none' (a purely linear 512→1024→4096 map). LLM-Morph: norm
'instance' (each channel normalised over the L tokens — not over features) and 'leaky-relu'.
``hidden`` absent means 2 × the input width: a value of the input shape, which a JSON Schema default
cannot express, so it is derived here from ``inputs["tokens"]["width"]`` (the shape rule does not need
it and leaves the options as they are). ``forward(tokens (N, L, C_in)) -> (N, L, out)``.

``norm`` and ``activation`` are the schema's enums; the composer has validated them.
"""

from __future__ import annotations

import torch.nn as nn

from llmed.nn import TokenInstanceNorm


def _post(width: int, norm: str, activation: str, slope: float) -> list[nn.Module]:
    mods: list[nn.Module] = []
    if norm == "instance":
        mods.append(TokenInstanceNorm(width))
    if activation == "leaky-relu":
        mods.append(nn.LeakyReLU(slope))
    return mods


def build(options: dict, inputs: dict) -> nn.Module:
    width = int(inputs["tokens"]["width"])
    hidden = int(options["hidden"]) if options.get("hidden") is not None else 2 * width
    out = int(options["out"])
    norm, act, slope = options["norm"], options["activation"], float(options["negativeSlope"])
    return nn.Sequential(nn.Linear(width, hidden), *_post(hidden, norm, act, slope), nn.Linear(hidden, out), *_post(out, norm, act, slope))
