"""What every loss plugin shares: the scale weighting and the fixed image on each field's grid.

The loss terms themselves live in their plugin folders (``plugins/mse``, ``plugins/ncc``,
``plugins/dice-loss``, ``plugins/diffusion``); this module keeps only the plumbing they all use, so a
third-party loss gets the same conventions by importing it.

Every term sees the model outputs ``{'fields': [φ_1 … φ_S], 'warped': [m∘φ_1 … m∘φ_S], …}``
(coarse → fine; ``m∘φ_s`` is the full-resolution moving image sampled on field ``s``'s grid) and the
batch ``{'moving', 'fixed', 'moving_labels'?, 'fixed_labels'?, 'fixed_pyramid'?}``. The fixed image at
scale ``s`` is ``resize_image(fixed, grid of φ_s)`` (trilinear, corner-aligned — the same geometry as
the warp), computed once per batch by :func:`prepare_batch` unless the batch brings ``fixed_pyramid``.

``scaleWeights`` are matched to the fields from the fine end: ``[0.25, 0.5, 1]`` with three fields
weights 1/4, 1/2, full; a single number weights the final field only; more weights than fields is an
error. A term's value is ``Σ_s w_s · term(scale s)``. The weights' default is each plugin's schema
default (the options arrive filled in); nothing here defaults them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from .nn import resize_image

__all__ = ["weighted_scales", "prepare_batch", "ScaleWeightedLoss"]


def weighted_scales(n_fields: int, weights: Sequence[float] | float) -> list[tuple[int, float]]:
    """Pair scale weights with field indices, aligned at the finest field: ``[(index, weight), …]``.

    The field count is only known at run time (a cascade trained step by step, a decoder with more
    or fewer stages), so this check stays here: a silent mismatch would weight the wrong scales.
    """
    if isinstance(weights, (int, float)):
        weights = [float(weights)]
    weights = [float(w) for w in weights]
    if not weights:
        raise ValueError("scaleWeights must hold at least one weight")
    if len(weights) > n_fields:
        raise ValueError(f"{len(weights)} scaleWeights {weights} for only {n_fields} fields (weights go coarse → fine)")
    first = n_fields - len(weights)
    return [(first + k, w) for k, w in enumerate(weights) if w != 0.0]


def prepare_batch(outputs: dict, batch: dict) -> dict:
    """A shallow copy of ``batch`` with ``fixed_pyramid`` (fixed image at every field's grid) filled in."""
    if batch.get("fixed_pyramid") is not None:
        return batch
    fixed = batch["fixed"]
    out = dict(batch)
    out["fixed_pyramid"] = [resize_image(fixed, f.shape[2:]) for f in outputs["fields"]]
    return out


class ScaleWeightedLoss(nn.Module):
    """Base of a scale-weighted loss plugin: ``Σ_s w_s · term(s)`` over the fields ``scaleWeights`` picks.

    ``options`` are the plugin's options as the composer filled them from the descriptor's schema;
    ``options["scaleWeights"]`` must be there.
    """

    #: Whether the term reads one-hot label maps; the trainer builds them only when some term does.
    uses_labels: bool = False

    def __init__(self, options: dict):
        super().__init__()
        self.options = dict(options)
        self.scale_weights = self.options["scaleWeights"]

    def term(self, s: int, outputs: dict, batch: dict) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        batch = prepare_batch(outputs, batch)
        pairs = weighted_scales(len(outputs["fields"]), self.scale_weights)
        total = outputs["fields"][-1].new_zeros(())
        for s, w in pairs:
            total = total + w * self.term(s, outputs, batch)
        return total
