"""linear — Merlin-style linear adapter: ``forward(tokens (N, L, C)) -> (N, L, outWidth)`` (or (N, 1, outWidth)
with ``tokens: 'mean'``, the average token first).

``normalise: 'standardise'`` first maps every feature channel to zero mean and unit spread with statistics
fitted once on the training set's features (:meth:`LinearAdapter.fit_features`, which the report trainer
calls before the first step when the encoder is frozen and its features are cached). Frozen CNN features
are non-negative (post-ReLU) with a large common part shared by every scan; on them the adapter's AdamW
steps move all outputs together, so it learns a constant (a soft prompt) long before anything that tells
one scan from another. The statistics are buffers: they are saved with the trainable tensors and exported
in the vision graph.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class LinearAdapter(nn.Module):
    changes_length = True  # the token count out is not the count in (pooling / a mean token)

    def __init__(self, options: dict, tokens: dict):
        super().__init__()
        width = int(tokens["width"])
        self.mean = options["tokens"] == "mean"
        self.standardise = options["normalise"] == "standardise"
        self.proj = nn.Linear(width, int(options["outWidth"]), bias=bool(options["bias"]))
        if self.standardise:
            self.register_buffer("feature_mean", torch.zeros(width))
            self.register_buffer("feature_scale", torch.ones(width))
            self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @property
    def needs_fit(self) -> bool:
        return self.standardise and not bool(self.fitted)

    @torch.no_grad()
    def fit_features(self, features: torch.Tensor, target_rms: float | None = None) -> dict:
        """Per-channel mean and standard deviation of ``features`` (S, L, C) over samples and tokens; a
        channel that never varies gets scale 1 (it is only centred). With ``target_rms`` (the report trainer
        passes the RMS of the LLM's token-embedding values) the map's weights are rescaled so that the image
        tokens start at that scale instead of several times it: out-of-scale tokens first disturb a frozen
        LLM (a blind model learns faster than one given such images) before they inform it."""
        if not self.standardise:
            return {}
        flat = features.reshape(-1, features.shape[-1]).double()
        mean, std = flat.mean(0), flat.std(0, unbiased=False)
        floor = 1e-6 * float(std.max().clamp(min=1e-12))
        scale = torch.where(std > floor, std, torch.ones_like(std))
        self.feature_mean.copy_(mean.to(self.feature_mean.dtype))
        self.feature_scale.copy_(scale.to(self.feature_scale.dtype))
        self.fitted.fill_(True)
        info = {"samples": int(features.shape[0]), "channels": int(features.shape[-1]), "constantChannels": int((std <= floor).sum())}
        z = ((flat - mean) / scale).to(self.proj.weight.dtype)
        before = float(torch.nn.functional.linear(z, self.proj.weight).pow(2).mean().sqrt())
        if target_rms is not None and before > 0:
            self.proj.weight.mul_(float(target_rms) / before)
            if self.proj.bias is not None:
                self.proj.bias.zero_()
            info.update(tokenRmsBefore=round(before, 5), tokenRms=round(float(target_rms), 5))
        return info

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.standardise:
            tokens = (tokens - self.feature_mean.to(tokens.dtype)) / self.feature_scale.to(tokens.dtype)
        if self.mean:
            tokens = tokens.mean(dim=1, keepdim=True)
        return self.proj(tokens)


def build(options: dict, inputs: dict | None = None) -> LinearAdapter:
    tokens = (inputs or {}).get("tokens")
    if not tokens:
        raise ValueError("linear needs the token shape (inputs.tokens) of the composed spec")
    return LinearAdapter(options, tokens)
