"""token-cross-entropy — next-token cross-entropy on the answer tokens only.

``build(options)`` → module, ``forward(outputs, batch) -> scalar``: ``outputs["logits"]`` (N, T, V) at every
input position and ``batch["labels"]`` (N, T) aligned with the inputs (the Hugging Face convention), −100
(``ignoreIndex``) wherever the position is prompt, image placeholder or padding. Position t predicts
label t+1; the mean is over the unmasked targets of the whole batch (every answer token weighs the same,
as in M3D and Hugging Face's causal-LM loss).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class TokenCrossEntropy(nn.Module):
    report_loss = True  # call convention: forward({"logits"}, {"labels"}) -> scalar

    def __init__(self, options: dict):
        super().__init__()
        self.ignore = int(options["ignoreIndex"])
        self.smoothing = float(options["labelSmoothing"])

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        logits, labels = outputs["logits"], batch["labels"]
        if logits.shape[:2] != labels.shape:
            raise ValueError(f"token-cross-entropy: logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")
        pred = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
        target = labels[:, 1:].reshape(-1)
        if not bool((target != self.ignore).any()):
            # no answer token in the batch (all truncated away): a zero that still joins the graph
            return logits.sum() * 0.0
        return F.cross_entropy(pred, target, ignore_index=self.ignore, label_smoothing=self.smoothing)


def build(options: dict, inputs: dict | None = None) -> TokenCrossEntropy:
    return TokenCrossEntropy(options)
