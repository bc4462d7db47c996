"""linear — Merlin-style linear adapter: ``forward(tokens (N, L, C)) -> (N, L, outWidth)`` (or (N, 1, outWidth)
with ``tokens: 'mean'``, the average token first)."""

from __future__ import annotations

import torch
import torch.nn as nn


class LinearAdapter(nn.Module):
    changes_length = True  # the token count out is not the count in (pooling / a mean token)

    def __init__(self, options: dict, tokens: dict):
        super().__init__()
        self.mean = options["tokens"] == "mean"
        self.proj = nn.Linear(int(tokens["width"]), int(options["outWidth"]), bias=bool(options["bias"]))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.mean:
            tokens = tokens.mean(dim=1, keepdim=True)
        return self.proj(tokens)


def build(options: dict, inputs: dict | None = None) -> LinearAdapter:
    tokens = (inputs or {}).get("tokens")
    if not tokens:
        raise ValueError("linear needs the token shape (inputs.tokens) of the composed spec")
    return LinearAdapter(options, tokens)
