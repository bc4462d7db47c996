"""token-cross-entropy — next-token cross-entropy on the answer tokens only.

``build(options)`` → module, ``forward(outputs, batch) -> scalar``: ``outputs["logits"]`` (N, T, V) at every
input position and ``batch["labels"]`` (N, T) aligned with the inputs (the Hugging Face convention), −100
(``ignoreIndex``) wherever the position is prompt, image placeholder or padding. Position t predicts
label t+1; the mean is over the unmasked targets of the whole batch (every answer token weighs the same,
as in M3D and Hugging Face's causal-LM loss).

Target positions only: a model may instead give ``outputs["logits"]`` (K, V) at just the K positions that
predict an answer token, with those K tokens in ``outputs["targets"]`` (K,) — the same loss, without the
vocabulary-wide logits and log-softmax of every prompt, image and pad position (``targets_only``: the
report model does this when every loss term says it can; 20 % of a SmolLM2 training step on a CPU).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class TokenCrossEntropy(nn.Module):
    report_loss = True  # call convention: forward({"logits"}, {"labels"}) -> scalar
    targets_only = True  # also accepts forward({"logits": (K, V), "targets": (K,)}, batch)

    def __init__(self, options: dict):
        super().__init__()
        self.ignore = int(options["ignoreIndex"])
        self.smoothing = float(options["labelSmoothing"])

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        logits = outputs["logits"]
        if "targets" in outputs:  # already at the target positions (targets_only)
            pred, target = logits, outputs["targets"]
            if logits.dim() != 2 or logits.shape[0] != target.shape[0]:
                raise ValueError(f"token-cross-entropy: target-position logits {tuple(logits.shape)} do not match targets {tuple(target.shape)}")
        else:
            labels = batch["labels"]
            if logits.shape[:2] != labels.shape:
                raise ValueError(f"token-cross-entropy: logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")
            pred = logits[:, :-1].reshape(-1, logits.shape[-1])
            target = labels[:, 1:].reshape(-1)
        if not bool((target != self.ignore).any()):
            # no answer token in the batch (all truncated away): a zero that still joins the graph
            return logits.sum() * 0.0
        return F.cross_entropy(pred.float(), target, ignore_index=self.ignore, label_smoothing=self.smoothing)


def build(options: dict, inputs: dict | None = None) -> TokenCrossEntropy:
    return TokenCrossEntropy(options)
