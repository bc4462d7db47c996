"""Strict, safe weight loading for plugins (a shared primitive: plugins import it, it lists no plugin).

* :func:`read_state_dict` reads safetensors, or a torch file with ``weights_only=True`` — never an
  arbitrary pickle.
* :func:`load_strict` is ``load_state_dict(strict=True)`` whose error names every missing key, every
  unexpected key and every shape clash, as one checkpoint error.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
import torch.nn as nn


class WeightsError(ValueError):
    kind = "checkpoint"

    def __init__(self, message: str, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.where, self.hint = where, hint


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from safetensors, or from a torch file read weights-only (never unpickles objects)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError("weights file not found", where=str(path))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses anything but tensors and plain containers
        raise WeightsError(
            f"cannot read as a weights-only torch file: {type(err).__name__}: {err}", where=str(path), hint="convert it to safetensors; llmed never unpickles arbitrary objects"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise WeightsError("file holds no state dict", where=str(path))
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """load_state_dict(strict=True) whose error names every missing and unexpected key and shape clashes."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    clashes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(set(own) & set(state)) if tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or clashes:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        if clashes:
            parts.append(f"shape mismatches (file vs model): {', '.join(clashes)}")
        raise WeightsError("; ".join(parts), where=where, hint="the options (patch, width, depth, heads, mlpWidth, cls) must match the weights")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def read_state_dict_bytes(data: bytes, where: str) -> dict[str, torch.Tensor]:
    """A torch state dict from bytes in memory, read weights-only."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(f"cannot read as a weights-only torch file: {type(err).__name__}: {err}", where=where) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError("holds no state dict", where=where)
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
