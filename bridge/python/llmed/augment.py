"""Random augmentation of training pairs for unsupervised registration (``train.augment`` of a registration config).

Why (issue #15, bench/results/learning-diagnosis.md, third round): on the synthetic warps 16 training pairs from 4
moving images are learnt by heart — at 400 steps the endpoint error on training pairs falls to 0.55 voxel while the
validation pairs' stays at 0.76 (identity 0.82), cosine to the true field 0.77 on training pairs against 0.39. The
network needs more distinct pairs than the data has; these transforms make new ones from each drawn pair:

* ``swap`` (probability): moving and fixed exchange places (their labels too) — the pair registered the other way,
  as in bidirectional training (VoxelMorph, SYMNet). Free of any assumption about the deformations.
* ``warpFixed`` (``probability``, ``maxDisplacement`` in voxels of the prepared grid, ``spacing`` of the control
  grid in voxels): the fixed image (and its labels) resampled by a random smooth displacement ``w``, giving the
  pair ``(m, f∘w)``. ``w`` is each component drawn uniformly in ``[−a, a]`` at control points every ``spacing``
  voxels (corners included), trilinearly interpolated to the grid (MONAI's ``Rand3DElastic`` family, without its
  Gaussian step). Every entry of its gradient is at most ``2a / spacing``, so ``‖∇w‖ ≤ 6a / spacing`` and
  ``a < spacing / 6`` cannot fold (det(I + ∇w) > 0); larger ``a`` may.
* ``flip`` (``probability``, ``axes``): both images (and their labels) mirrored along each listed NIfTI axis with
  probability ``probability``, drawn per axis — a mirrored pair whose true field is the mirrored field, so every
  pair comes in up to 2^len(axes) exact variants without resampling. Axis 0 of a RAS grid is left-right, the
  anatomically plausible mirror of a brain.
* ``warpBoth`` (``probability``, ``maxDisplacement``, ``spacing``): both images (and labels) resampled by the *same*
  random smooth field ``w``, giving ``(m∘w, f∘w)`` — new anatomy under (nearly) the pair's own deformation, where
  ``warpFixed`` adds ``w`` to the deformation the network must find.

Unsupervised losses need no true field, so the new pair is a valid training pair whatever ``w`` is; the
validation and test pairs are never augmented. Every draw is a pure function of ``(seed, draw index)`` like the
pair sampler, so a resumed run augments exactly as the uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .nn import warp

__all__ = ["PairAugmentation", "control_point_field"]


def control_point_field(shape_kji: tuple[int, int, int], max_displacement: float, spacing: float, generator: torch.Generator) -> torch.Tensor:
    """A random smooth displacement ``(1, 3, K, J, I)`` in voxels (channel c along NIfTI axis c): each component
    uniform in ``[−max_displacement, max_displacement]`` on a control grid at least ``spacing`` voxels apart
    (corners included), trilinear (corner-aligned) in between."""
    coarse = [max(2, int((n - 1) // spacing) + 1) for n in shape_kji]  # control spacing ≥ ``spacing`` voxels
    noise = torch.rand((1, 3, *coarse), generator=generator, dtype=torch.float32) * 2 - 1
    return torch.nn.functional.interpolate(noise, size=tuple(shape_kji), mode="trilinear", align_corners=True) * max_displacement


def _warp_side(sample: dict[str, torch.Tensor], side: str, w: torch.Tensor) -> None:
    """Resample ``sample[side]`` and its labels (in place in the dict) by the displacement ``w``."""
    sample[side] = warp(sample[side], w)
    if f"{side}_labels" in sample:  # one-hot: trilinear gives soft labels, what a Dice loss takes
        sample[f"{side}_labels"] = warp(sample[f"{side}_labels"], w)
    key = f"{side}_label_map"
    if key in sample:
        sample[key] = warp(sample[key].float(), w, mode="nearest").to(sample[key].dtype)


class PairAugmentation:
    """``augment(batch, draws) -> batch``: the options of ``train.augment`` applied per sample of the batch.

    ``options = {"swap": p, "warpFixed": {"probability": q, "maxDisplacement": a, "spacing": s}, "flip":
    {"probability": r, "axes": [0, ...]}, "warpBoth": {...as warpFixed}}`` (all filled from the experiment schema;
    every probability 0 is no augmentation and returns the batch untouched). The draws of ``flip`` and
    ``warpBoth`` come after those of ``swap`` and ``warpFixed`` and only when they are on, so a config without them
    augments exactly as before they existed.
    """

    def __init__(self, options: dict | None, seed: int):
        # The schema's defaults are the only ones; an empty or absent section (report runs, whose trainer passes {})
        # or sub-section is no augmentation, and a warp of 0 voxels is no warp.
        options = options or {}
        self.swap = float(options.get("swap", 0.0))
        wf = options.get("warpFixed") or {}
        self.max_displacement = float(wf["maxDisplacement"]) if wf else 0.0
        self.spacing = float(wf["spacing"]) if wf else 0.0
        self.warp_probability = float(wf["probability"]) if self.max_displacement > 0 else 0.0
        fl = options.get("flip") or {}
        self.flip_axes = tuple(int(a) for a in fl.get("axes", ())) if fl else ()
        self.flip_probability = float(fl.get("probability", 0.0)) if self.flip_axes else 0.0
        wb = options.get("warpBoth") or {}
        self.both_max_displacement = float(wb["maxDisplacement"]) if wb else 0.0
        self.both_spacing = float(wb["spacing"]) if wb else 0.0
        self.both_probability = float(wb["probability"]) if self.both_max_displacement > 0 else 0.0
        self.seed = int(seed)

    @property
    def active(self) -> bool:
        return self.swap > 0 or self.warp_probability > 0 or self.flip_probability > 0 or self.both_probability > 0

    def _generator(self, draw: int) -> torch.Generator:
        # a separate stream from the pair sampler's (seed, draw) → index
        return torch.Generator().manual_seed((self.seed * 1_000_003 + draw) * 2 + 1)

    def __call__(self, batch: dict[str, torch.Tensor], draws: Sequence[int]) -> dict[str, torch.Tensor]:
        """``draws``: the sampler draw index of each sample of the batch (what seeds its augmentation)."""
        if not self.active:
            return batch
        parts: list[dict[str, torch.Tensor]] = []
        for k, draw in enumerate(draws):
            g = self._generator(int(draw))
            sample = {name: t[k : k + 1] for name, t in batch.items()}
            if float(torch.rand((), generator=g)) < self.swap:
                for a, b in (("moving", "fixed"), ("moving_labels", "fixed_labels"), ("moving_label_map", "fixed_label_map")):
                    if a in sample and b in sample:
                        sample[a], sample[b] = sample[b], sample[a]
            if float(torch.rand((), generator=g)) < self.warp_probability:
                w = control_point_field(tuple(sample["fixed"].shape[2:]), self.max_displacement, self.spacing, g).to(sample["fixed"].device)
                _warp_side(sample, "fixed", w)
            if self.flip_probability > 0:
                # NIfTI axis a is tensor dim 4 - a ((N, C, K, J, I)); one draw per listed axis, always all of them
                dims = [4 - a for a in self.flip_axes if float(torch.rand((), generator=g)) < self.flip_probability]
                if dims:
                    sample = {name: torch.flip(t, dims) for name, t in sample.items()}
            if self.both_probability > 0 and float(torch.rand((), generator=g)) < self.both_probability:
                w = control_point_field(tuple(sample["fixed"].shape[2:]), self.both_max_displacement, self.both_spacing, g).to(sample["fixed"].device)
                _warp_side(sample, "moving", w)
                _warp_side(sample, "fixed", w)
            parts.append(sample)
        return {name: torch.cat([p[name] for p in parts], dim=0) for name in batch}
