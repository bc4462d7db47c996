"""Loss terms shared by the loss plugins (mse, ncc, dice, diffusion).

Every term sees the model outputs ``{'fields': [φ_1 … φ_S], 'warped': [m∘φ_1 … m∘φ_S], …}``
(coarse → fine; ``m∘φ_s`` is the full-resolution moving image sampled on field ``s``'s grid) and the
batch ``{'moving', 'fixed', 'moving_labels'?, 'fixed_labels'?, 'fixed_pyramid'?}``. The fixed image at
scale ``s`` is ``resize_image(fixed, grid of φ_s)`` (trilinear, corner-aligned — the same geometry as
the warp), computed once per batch by :func:`prepare_batch` unless the batch brings ``fixed_pyramid``.

``scaleWeights`` are matched to the fields from the fine end: ``[0.25, 0.5, 1]`` with three fields
weights 1/4, 1/2, full; a single number weights the final field only; more weights than fields is an
error. A term's value is ``Σ_s w_s · term(scale s)``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .nn import resize_image, warp

__all__ = [
    "weighted_scales",
    "prepare_batch",
    "mse",
    "gaussian_smooth",
    "local_ncc",
    "soft_dice",
    "gradient_penalty",
    "ScaleWeightedLoss",
    "MSELoss",
    "NCCLoss",
    "DiceLoss",
    "DiffusionLoss",
]


def weighted_scales(n_fields: int, weights: Sequence[float] | float | None, default=(0.25, 0.5, 1.0)) -> list[tuple[int, float]]:
    """Pair scale weights with field indices, aligned at the finest field: ``[(index, weight), …]``."""
    if weights is None:
        weights = list(default)
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


def mse(warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all voxels (and channels, batch)."""
    return torch.mean((warped - fixed) ** 2)


def gaussian_smooth(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, K, J, I)`` with standard deviation ``sigma`` voxels (kernel
    radius ⌈3σ⌉, at most the axis length − 1, renormalised; replicated borders); ``sigma <= 0`` is a no-op."""
    if sigma <= 0:
        return image
    n, c = image.shape[:2]
    x = image.reshape(n * c, 1, *image.shape[2:])
    for axis in range(3):  # torch axes K, J, I
        radius = min(max(1, math.ceil(3 * sigma)), x.shape[2 + axis] - 1)
        if radius < 1:
            continue
        t = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
        kernel = torch.exp(-(t * t) / (2 * sigma * sigma))
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = kernel.numel()
        pad = [0] * 6  # F.pad orders (I, J, K) pairs
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius
        x = F.conv3d(F.pad(x, pad, mode="replicate"), (kernel / kernel.sum()).view(shape))
    return x.reshape(image.shape)


def local_ncc(a: torch.Tensor, b: torch.Tensor, window: int = 9, eps: float = 1e-5) -> torch.Tensor:
    """Mean local normalised cross-correlation, VoxelMorph's definition (cc ∈ [0, 1], higher = better).

    Over the ``window³`` neighbourhood W(p) (zero padded at the borders), with n = window³:
    ``cross = Σab − ā·Σb·… = Σab − μ_b Σa − μ_a Σb + μ_a μ_b n``, ``var_a = Σa² − 2μ_a Σa + μ_a² n`` (same
    for b), ``cc(p) = cross² / (var_a · var_b + eps)``; returns the mean of cc over voxels.
    """
    n, c = a.shape[:2]
    a = a.reshape(n * c, 1, *a.shape[2:])
    b = b.reshape(n * c, 1, *b.shape[2:])
    kernel = torch.ones(1, 1, window, window, window, device=a.device, dtype=a.dtype)
    pad = window // 2
    box = lambda x: F.conv3d(x, kernel, padding=pad)  # noqa: E731 — windowed sum
    sa, sb = box(a), box(b)
    saa, sbb, sab = box(a * a), box(b * b), box(a * b)
    size = float(window ** 3)
    ma, mb = sa / size, sb / size
    cross = sab - mb * sa - ma * sb + ma * mb * size
    var_a = saa - 2 * ma * sa + ma * ma * size
    var_b = sbb - 2 * mb * sb + mb * mb * size
    cc = cross * cross / (var_a * var_b + eps)
    return cc.mean()


def soft_dice(pred: torch.Tensor, target: torch.Tensor, ignore: Sequence[int] = (0,), eps: float = 1e-5) -> torch.Tensor:
    """Negative mean soft Dice over label channels not in ``ignore`` (MambaMorph's Dice loss).

    ``pred``/``target`` are ``(N, L, K, J, I)`` soft/one-hot labels, channel ``l`` = label index ``l``.
    ``L = −mean_{n, l∉ignore} 2Σ(ŝ·s) / max(Σ(ŝ + s), eps)``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"dice: warped labels {tuple(pred.shape)} and fixed labels {tuple(target.shape)} differ")
    keep = [l for l in range(pred.shape[1]) if l not in set(int(i) for i in ignore)]
    if not keep:
        raise ValueError(f"dice: every one of the {pred.shape[1]} label channels is ignored ({list(ignore)})")
    p, t = pred[:, keep], target[:, keep]
    dims = tuple(range(2, pred.dim()))
    num = 2 * (p * t).sum(dims)
    den = torch.clamp((p + t).sum(dims), min=eps)
    return -torch.mean(num / den)


def gradient_penalty(field: torch.Tensor, penalty: str = "l2") -> torch.Tensor:
    """VoxelMorph Grad: ``(mean(∂_i u^p) + mean(∂_j u^p) + mean(∂_k u^p)) / 3``, forward differences in
    voxels of the field's own grid, ``p = 2`` (squared, 'l2' — LLaMA-Reg's smoothness loss) or
    ``|·|`` ('l1')."""
    if penalty not in ("l2", "l1"):
        raise ValueError(f"penalty must be 'l2' or 'l1', got {penalty!r}")
    diffs = [field[:, :, 1:] - field[:, :, :-1], field[:, :, :, 1:] - field[:, :, :, :-1],
             field[:, :, :, :, 1:] - field[:, :, :, :, :-1]]
    f = (lambda d: d * d) if penalty == "l2" else torch.abs
    return sum(torch.mean(f(d)) for d in diffs) / 3.0


class ScaleWeightedLoss(nn.Module):
    """Base: ``Σ_s w_s · term(s)`` over the fields picked by ``scaleWeights``."""

    default_weights: tuple = (0.25, 0.5, 1.0)
    #: Whether the term reads one-hot label maps; the trainer builds them only when some term does.
    uses_labels: bool = False

    def __init__(self, options: dict | None = None):
        super().__init__()
        self.options = dict(options or {})
        self.scale_weights = self.options.get("scaleWeights", list(self.default_weights))

    def term(self, s: int, outputs: dict, batch: dict) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        batch = prepare_batch(outputs, batch)
        pairs = weighted_scales(len(outputs["fields"]), self.scale_weights, self.default_weights)
        total = outputs["fields"][-1].new_zeros(())
        for s, w in pairs:
            total = total + w * self.term(s, outputs, batch)
        return total


class MSELoss(ScaleWeightedLoss):
    """``Σ_s w_s · mean((G_σ * m∘φ_s − G_σ * f_s)²)`` (LLaMA-Reg, spec §1.5, when ``smoothing`` σ = 0).

    ``smoothing`` σ (voxels of each scale's grid) blurs both images before the difference. Why: trilinear
    sampling at a fractional displacement low-passes the moving image, and MSE between misaligned images
    prefers a blurred prediction, so a *constant* sub-voxel offset of every field lowers plain MSE by
    about 12 % on the demo's and the synthetic warps' pairs — a shortcut an untrained network finds at once
    through its biases, which raises the endpoint error (bench/results/learning-diagnosis.md). With σ = 1
    the offset gains nothing on the synthetic warps while the true field still lowers the loss by 98 %.
    """

    def term(self, s, outputs, batch):
        sigma = float(self.options.get("smoothing", 0.0))
        return mse(gaussian_smooth(outputs["warped"][s], sigma), gaussian_smooth(batch["fixed_pyramid"][s], sigma))


class NCCLoss(ScaleWeightedLoss):
    """``−Σ_s w_s · mean cc_n(m∘φ_s, f_s)`` with an ``window³`` window (VoxelMorph NCC)."""

    def term(self, s, outputs, batch):
        return -local_ncc(outputs["warped"][s], batch["fixed_pyramid"][s], int(self.options.get("window", 9)))


class DiceLoss(ScaleWeightedLoss):
    """Soft Dice of one-hot moving labels warped *trilinearly* by φ_s against the fixed labels at scale
    ``s`` (default: the final field only). Needs ``batch['moving_labels']`` and ``batch['fixed_labels']``
    (one-hot float ``(N, L, K, J, I)``, channel = label index)."""

    default_weights = (1.0,)
    uses_labels = True

    def term(self, s, outputs, batch):
        ml, fl = batch.get("moving_labels"), batch.get("fixed_labels")
        if ml is None or fl is None:
            raise KeyError("the dice loss needs batch['moving_labels'] and batch['fixed_labels'] (one-hot float, (N, L, K, J, I))")
        field = outputs["fields"][s]
        warped = warp(ml.to(field.dtype), field, mode="bilinear")
        return soft_dice(warped, resize_image(fl.to(field.dtype), field.shape[2:]), self.options.get("ignore", [0]))


class DiffusionLoss(ScaleWeightedLoss):
    """``Σ_s w_s · Grad_p(φ_s)`` (VoxelMorph Grad-l2 per scale; the config's loss weight is λ)."""

    def term(self, s, outputs, batch):
        return gradient_penalty(outputs["fields"][s], self.options.get("penalty", "l2"))
