"""Training checkpoints: model tensors and optimizer state (safetensors, no pickle), JSON state.

A checkpoint called ``<tag>`` (``last`` or ``best``) in ``<run>/checkpoints/`` is three files:

* ``<tag>.safetensors`` - the model tensors that are not *base weights* (below), plus every persistent
  buffer. Metadata: ``{"llmed.step": ..., "llmed.tag": ...}``.
* ``<tag>.optim.safetensors`` - the optimizer's (and GradScaler's) state: its tensors, and the rest of
  ``{"step", "optimizer", "scaler"}`` as JSON in the metadata (``llmed.optimizer``, see :func:`pack_state`).
  Nothing in a checkpoint is a pickle, so loading a crafted run folder cannot run code. Run folders
  written before this format have ``<tag>.optim.pt``; it is read with ``torch.load(weights_only=True)``,
  which refuses anything but tensors and plain containers.
* ``<tag>.json`` - step, cascade phase, best metric, RNG states (python, numpy, torch, cuda) and the names
  of the two files above. Written last: it is the commit record of the checkpoint.

**What is saved.** *Base weights* are the parameters that are frozen when the model is built (the
pretrained LLM layers, loaded from their Hugging Face folder, or frozen random layers made from the
run's seed). They never change during training, so they are not written again; every other parameter
(adapters, encoders, decoder, position embeddings, LoRA factors - also those a cascade phase froze
*after* training them) and every persistent buffer is. Instead of the base weights the JSON stores a
SHA-256 fingerprint of them, and loading checks that the model it loads into has the same base
weights, so a checkpoint can never be silently combined with other LLM weights.

**Atomicity.** All three files are first written completely to ``<file>.tmp-<pid>`` (and fsynced);
only then are they moved into place with ``os.replace``, the JSON last. An exception, Ctrl-C or a kill
while writing leaves the previous checkpoint untouched and loadable. The one window left - a kill
between the three renames, microseconds long - cannot produce a silent mix: each data file records
the step it belongs to and loading checks that they agree with the JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .atomic import atomic_write, atomic_write_group, atomic_write_json, atomic_write_text  # noqa: F401

CHECKPOINT_FORMAT = "llmed-checkpoint-v1"
OPTIMIZER_METADATA_KEY = "llmed.optimizer"


class CheckpointError(Exception):
    """A checkpoint that is missing, incomplete or does not fit the model (llmed error kind 'checkpoint'):
    a run's checkpoints here, an LLM checkpoint folder in :mod:`llmed.llm` (one class for both).

    ``where`` is the file or folder at fault; the bridge passes it on (``{'ok': False, 'kind', 'where', …}``),
    so TypeScript's error names it. ``path`` is the same, under the name llmed.llm's callers used.
    """

    kind = "checkpoint"

    def __init__(self, message: str, where: str | os.PathLike[str] | None = None, hint: str | None = None):
        super().__init__(message)
        self.where = str(where) if where is not None else None
        self.hint = hint

    @property
    def path(self) -> str | None:
        return self.where


# Atomic writes: llmed.atomic (the one implementation); the names stay importable from here.


# ----------------------------------------------------------------------------------------------------
# Which tensors a checkpoint holds
# ----------------------------------------------------------------------------------------------------


def frozen_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters frozen right now; call it right after building the model to get the
    base weights. Shared parameters are listed once (under their first name)."""
    return [name for name, p in model.named_parameters() if not p.requires_grad]


def base_fingerprint(model: nn.Module, base_names: Iterable[str]) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of the base weights (a few seconds for an 8B
    layer pair; computed once per run)."""
    params = dict(model.named_parameters())
    digest = hashlib.sha256()
    for name in sorted(base_names):
        t = params[name].detach()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        # bf16/fp16 have no numpy dtype; hash their raw bits through an int16 view instead.
        data = t.cpu().contiguous()
        if data.dtype in (torch.bfloat16, torch.float16):
            data = data.view(torch.int16)
        digest.update(data.numpy().tobytes())
    return digest.hexdigest()


def checkpoint_tensors(model: nn.Module, base_names: Iterable[str]) -> dict[str, torch.Tensor]:
    """Every parameter except the base weights, plus persistent buffers, as contiguous CPU copies.

    Parameters shared between modules (a config's ``share``) appear once, under their first name; safetensors
    refuses aliased tensors and loading restores the shared module through that one name.
    """
    base = set(base_names)
    persistent = set(model.state_dict(keep_vars=True).keys())
    out: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if name not in base:
            out[name] = p.detach().cpu().clone().contiguous()
    for name, b in model.named_buffers():
        if name in persistent:
            out[name] = b.detach().cpu().clone().contiguous()
    return out


def _expected_names(model: nn.Module, base_names: Iterable[str]) -> set[str]:
    return set(checkpoint_tensor_names(model, base_names))


def checkpoint_tensor_names(model: nn.Module, base_names: Iterable[str]) -> list[str]:
    base = set(base_names)
    persistent = set(model.state_dict(keep_vars=True).keys())
    names = [n for n, _ in model.named_parameters() if n not in base]
    names += [n for n, _ in model.named_buffers() if n in persistent]
    return names


# ----------------------------------------------------------------------------------------------------
# RNG state <-> JSON
# ----------------------------------------------------------------------------------------------------


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _from_b64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def capture_rng_state() -> dict[str, Any]:
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, base64.b64encode(np.asarray(np_keys, dtype="<u4").tobytes()).decode("ascii"), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": _b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    keys = np.frombuffer(base64.b64decode(np_keys), dtype="<u4").astype(np.uint32)
    np.random.set_state((np_name, keys, np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(_from_b64(state["torch"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([_from_b64(s) for s in state["cuda"]])


# ----------------------------------------------------------------------------------------------------
# Save / load
# ----------------------------------------------------------------------------------------------------


def checkpoint_paths(checkpoint_dir: str | os.PathLike[str], tag: str) -> dict[str, Path]:
    d = Path(checkpoint_dir)
    return {"tensors": d / f"{tag}.safetensors", "optim": d / f"{tag}.optim.safetensors", "json": d / f"{tag}.json"}


# ----------------------------------------------------------------------------------------------------
# Optimizer state <-> safetensors + JSON
# ----------------------------------------------------------------------------------------------------


def pack_state(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` (an optimizer/scaler state dict) as JSON, its tensors moved into ``tensors`` under ``t<n>``.
    Dicts become ``{"$dict": [[key, value], ...]}`` (optimizer state is keyed by int), tuples
    ``{"$tuple": [...]}``, non-finite floats ``{"$float": "inf"}``, tensors ``{"$tensor": "t<n>"}``."""
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = value.detach().cpu().clone().contiguous()
        return {"$tensor": name}
    if isinstance(value, dict):
        return {"$dict": [[k, pack_state(v, tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$tuple": [pack_state(v, tensors) for v in value]}
    if isinstance(value, list):
        return [pack_state(v, tensors) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(f"optimizer state holds a {type(value).__name__}, which a checkpoint cannot store")


def unpack_state(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """Inverse of :func:`pack_state`; anything it would not have written is a CheckpointError naming ``where``."""
    if isinstance(value, list):
        return [unpack_state(v, tensors, where) for v in value]
    if isinstance(value, dict):
        if len(value) == 1 and "$tensor" in value and value["$tensor"] in tensors:
            return tensors[value["$tensor"]]
        if len(value) == 1 and isinstance(value.get("$dict"), list) and all(isinstance(kv, list) and len(kv) == 2 and isinstance(kv[0], (int, str)) for kv in value["$dict"]):
            return {k: unpack_state(v, tensors, where) for k, v in value["$dict"]}
        if len(value) == 1 and isinstance(value.get("$tuple"), list):
            return tuple(unpack_state(v, tensors, where) for v in value["$tuple"])
        if len(value) == 1 and value.get("$float") in ("inf", "-inf", "nan"):
            return float(value["$float"])
        raise CheckpointError(f"optimizer state has an entry this format does not write ({str(value)[:80]})", where=where)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(f"optimizer state has a {type(value).__name__}", where=where)


def _save_optimizer_file(tmp: str, blob: dict, step: int) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    structure = pack_state(blob, tensors)
    save_file(tensors, tmp, metadata={"llmed.step": str(step), OPTIMIZER_METADATA_KEY: json.dumps(structure)})


def read_optimizer_state(path: Path, map_location: str | torch.device) -> dict:
    """The ``{"step", "optimizer", "scaler"}`` blob of a checkpoint; ``.pt`` files (older runs) load weights-only."""
    if path.suffix == ".pt":
        try:
            blob = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # an UnpicklingError for anything but tensors and plain containers
            raise CheckpointError(
                f"cannot read optimizer state {path.name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
                where=str(path),
                hint="restart the run; a checkpoint llmed wrote never holds anything else",
            ) from None
    else:
        tensors, metadata = _read_safetensors(path, map_location)
        try:
            structure = json.loads(metadata.get(OPTIMIZER_METADATA_KEY, ""))
        except json.JSONDecodeError:
            raise CheckpointError(f"{path.name} has no readable optimizer state in its metadata", where=str(path)) from None
        blob = unpack_state(structure, tensors, str(path))
    if not isinstance(blob, dict):
        raise CheckpointError(f"{path.name} does not hold an optimizer state", where=str(path))
    return blob


def _read_safetensors(path: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; a damaged file is a CheckpointError naming it."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except FileNotFoundError:
        raise CheckpointError(f"{path.name} is missing", where=str(path)) from None
    except Exception as err:  # SafetensorError, OSError: a truncated or foreign file
        raise CheckpointError(
            f"{path.name} is not a readable safetensors file ({type(err).__name__}: {err})", where=str(path), hint="the file is damaged; use the other checkpoint (best/last) or restart the run"
        ) from None
    return tensors, metadata


def save_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
    tag: str,
    *,
    model: nn.Module,
    base_names: Iterable[str],
    base_sha256: str,
    step: int,
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scaler: Any = None,
) -> dict[str, Path]:
    """Write checkpoint ``tag`` (see the module doc). ``state`` goes into the JSON (phase, best metric,
    total steps, ...); RNG states are captured here."""
    from safetensors.torch import save_file

    base_names = list(base_names)
    paths = checkpoint_paths(checkpoint_dir, tag)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    tensors = checkpoint_tensors(model, base_names)
    meta = {"llmed.step": str(step), "llmed.tag": tag, "format": "pt"}
    record = {
        "format": CHECKPOINT_FORMAT,
        "tag": tag,
        "step": step,
        **state,
        "tensors": paths["tensors"].name,
        "optimizer": paths["optim"].name if optimizer is not None else None,
        "baseWeights": {"count": len(base_names), "sha256": base_sha256},
        "rng": capture_rng_state(),
    }
    writes: list[tuple[Path, Callable[[str], None]]] = [(paths["tensors"], lambda tmp: save_file(tensors, tmp, metadata=meta))]
    if optimizer is not None:
        blob = {"step": step, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None}
        writes.append((paths["optim"], lambda tmp: _save_optimizer_file(tmp, blob, step)))

    def write_record(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(json.dumps(record, indent=2) + "\n")

    writes.append((paths["json"], write_record))
    atomic_write_group(writes)
    return paths


def read_checkpoint_record(checkpoint_dir: str | os.PathLike[str], tag: str) -> dict[str, Any]:
    paths = checkpoint_paths(checkpoint_dir, tag)
    if not Path(checkpoint_dir).is_dir():
        raise CheckpointError("no checkpoints folder", where=str(checkpoint_dir), hint="train first (`llmed train <experiment>`), or name a run folder that has checkpoints/")
    try:
        record = json.loads(paths["json"].read_text())
    except FileNotFoundError:
        raise CheckpointError(f"no '{tag}' checkpoint", where=str(paths["json"]), hint="the run stopped before its first checkpoint; start a new run instead of resuming") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise CheckpointError(f"checkpoint record is not valid JSON ({type(err).__name__}: {err})", where=str(paths["json"])) from None
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"not an llmed checkpoint record (format {record.get('format') if isinstance(record, dict) else None!r})", where=str(paths["json"]))
    # The record names the files of the checkpoint: plain names inside checkpoints/, never paths elsewhere.
    for key in ("tensors", "optimizer"):
        name = record.get(key)
        if name is not None and (not isinstance(name, str) or not name or os.path.basename(name) != name or name in (".", "..")):
            raise CheckpointError(f"{key} must be a plain file name inside checkpoints/, not {name!r}", where=str(paths["json"]))
    if not isinstance(record.get("step"), int) or record["step"] < 0:
        raise CheckpointError(f"step must be a non-negative integer, not {record.get('step')!r}", where=str(paths["json"]))
    return record


def load_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
    tag: str,
    *,
    model: nn.Module,
    base_names: Iterable[str],
    base_sha256: str | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: Any = None,
    restore_rng: bool = False,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load checkpoint ``tag`` into ``model`` (and ``optimizer``/``scaler`` when given); returns the JSON
    record. ``base_sha256`` (the model's current base-weight fingerprint) is checked against the record
    when given."""
    record = read_checkpoint_record(checkpoint_dir, tag)
    paths = checkpoint_paths(checkpoint_dir, tag)
    paths["tensors"] = Path(checkpoint_dir) / (record.get("tensors") or paths["tensors"].name)
    if record.get("optimizer"):
        paths["optim"] = Path(checkpoint_dir) / record["optimizer"]
    step = int(record["step"])
    if not paths["tensors"].exists():
        raise CheckpointError(f"'{tag}' record exists but {paths['tensors'].name} is missing", where=str(paths["tensors"]))
    tensors, tensor_meta = _read_safetensors(paths["tensors"], map_location)
    file_step = tensor_meta.get("llmed.step")
    if file_step is not None and file_step != str(step):
        raise CheckpointError(
            f"{paths['tensors'].name} is from step {file_step} but {paths['json'].name} says step {step}: the process was killed between the two renames of a checkpoint write",
            where=str(paths["tensors"]),
            hint="use the other checkpoint (best/last) or restart the run",
        )
    want = record.get("baseWeights", {}).get("sha256")
    if base_sha256 is not None and want is not None and want != base_sha256:
        raise CheckpointError(
            "the model's frozen base weights (LLM layers) differ from those the checkpoint was trained with",
            where=str(paths["json"]),
            hint="build the model from the run's own spec.json with the run's seed, and keep the LLM checkpoint folder unchanged",
        )
    expected = _expected_names(model, base_names)
    missing = sorted(expected - set(tensors))
    unexpected = sorted(set(tensors) - expected)
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"{len(missing)} model tensors are not in it (first: {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} of its tensors are not in the model (first: {unexpected[0]})")
        raise CheckpointError(
            f"checkpoint does not fit this model: {'; '.join(detail)}", where=str(paths["tensors"]), hint="the spec changed since the checkpoint was written; load it with the run's own spec.json"
        )
    bad_shape = [n for n, t in tensors.items() if tuple(t.shape) != tuple(_lookup(model, n).shape)]
    if bad_shape:
        n = bad_shape[0]
        raise CheckpointError(f"tensor {n} has shape {tuple(tensors[n].shape)} in the checkpoint, {tuple(_lookup(model, n).shape)} in the model", where=str(paths["tensors"]))
    with torch.no_grad():
        for name, value in tensors.items():
            target = _lookup(model, name)
            target.copy_(value.to(device=target.device, dtype=target.dtype))
    if optimizer is not None or scaler is not None:
        if not paths["optim"].exists():
            raise CheckpointError(f"optimizer state {paths['optim'].name} is missing", where=str(paths["optim"]))
        blob = read_optimizer_state(paths["optim"], map_location)
        if blob.get("step") != step:
            raise CheckpointError(
                f"{paths['optim'].name} is from step {blob.get('step')} but the record says step {step}", where=str(paths["optim"]), hint="restart the run; the checkpoint write was interrupted"
            )
        if optimizer is not None:
            try:
                optimizer.load_state_dict(blob["optimizer"])
            except (ValueError, KeyError, TypeError) as err:
                raise CheckpointError(f"optimizer state does not fit: {err}", where=str(paths["optim"])) from None
        if scaler is not None and blob.get("scaler"):
            try:
                scaler.load_state_dict(blob["scaler"])
            except (ValueError, KeyError, TypeError, RuntimeError) as err:
                raise CheckpointError(f"GradScaler state does not fit: {err}", where=str(paths["optim"])) from None
    if restore_rng and "rng" in record:
        restore_rng_state(record["rng"])
    return record


def _lookup(model: nn.Module, name: str) -> torch.Tensor:
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name) if module_name else model
    return getattr(module, attr)
