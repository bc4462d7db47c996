"""Prepared datasets: memory-mapped volumes, seeded pair sampling, one-hot labels.

A prepared folder is written once by TypeScript (``llmed data prepare``; format in
``packages/imaging/src/cache.ts``):

* ``pairs.json``: ``{"train": [{"moving", "fixed", "movingLabels"?, "fixedLabels"?}], "val": [...],
  "test": [...], "labels": [label values], "shape": [nx, ny, nz], "title": ...}``;
* per volume ``<name>.json`` (header) + raw little-endian data ``<name>.f32`` (float32 images) or
  ``<name>.i32`` (int32 label maps), C order ``[components, nz, ny, nx]`` - NIfTI ``i`` fastest, so a
  ``numpy.memmap`` of that shape is torch's ``(C, K, J, I)`` without any copy or transpose.

Volumes are opened with ``numpy.memmap`` (read-only) and never go through JSON. The pair sampler is a
pure function of ``(seed, step)``, so a resumed run draws exactly the pairs the uninterrupted run would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

PREPARED_FORMAT = "llmed-prepared-v1"
_NUMPY_DTYPES = {"float32": "<f4", "int32": "<i4", "f32": "<f4", "i32": "<i4", "<f4": "<f4", "<i4": "<i4"}


class DataError(Exception):
    """A prepared dataset that cannot be used (missing or inconsistent files). ``kind`` is the llmed
    error kind the bridge reports to TypeScript."""

    kind = "data"

    def __init__(self, message: str, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.where = where
        self.hint = hint


def write_prepared_volume(folder: str | os.PathLike[str], name: str, data: np.ndarray, preprocessing: Any = None) -> None:
    """Write ``data`` (K, J, I), or (C, K, J, I) for a C-component volume such as a field, as a prepared volume —
    raw little-endian + the JSON header of the TypeScript cache (packages/imaging cache.ts), 1 mm RAS identity
    grid. Integer arrays → ``.i32``, others → ``.f32``. For tests and benchmarks that need a prepared dataset
    without NIfTI files."""
    folder = Path(folder)
    is_label = np.issubdtype(data.dtype, np.integer)
    numpy_dtype, ext = ("<i4", "i32") if is_label else ("<f4", "f32")
    array = np.ascontiguousarray(data.astype(numpy_dtype))
    if array.ndim == 3:
        array = array[None]
    (folder / f"{name}.{ext}").write_bytes(array.tobytes())
    components, nz, ny, nx = array.shape
    header = {
        "format": "llmed-prepared-v1",
        "name": name,
        "dataFile": f"{name}.{ext}",
        "dtype": "int32" if is_label else "float32",
        "numpyDtype": numpy_dtype,
        "byteOrder": "little",
        "shape": [components, nz, ny, nx],
        "dims": [nx, ny, nz],
        "components": components,
        "spacing": [1, 1, 1],
        "affine": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
        "orientation": "RAS",
        "bytes": array.nbytes,
        "source": None,
        "preprocessing": preprocessing,
    }
    (folder / f"{name}.json").write_text(json.dumps(header))


def read_header(prepared_dir: str | os.PathLike[str], name: str) -> dict[str, Any]:
    path = Path(prepared_dir) / f"{name}.json"
    try:
        header = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"prepared volume '{name}' has no header file", where=str(path), hint="run `llmed data prepare <experiment>` again") from None
    except json.JSONDecodeError as err:
        raise DataError(f"header is not valid JSON ({err})", where=str(path)) from None
    if not isinstance(header, dict):
        raise DataError("header is not a JSON object", where=str(path))
    return header


def open_volume(prepared_dir: str | os.PathLike[str], name: str) -> np.memmap:
    """Memory-map prepared volume ``name`` as a read-only array of shape ``(C, K, J, I)``."""
    header = read_header(prepared_dir, name)
    where = str(Path(prepared_dir) / f"{name}.json")
    dtype = _NUMPY_DTYPES.get(str(header.get("numpyDtype") or header.get("dtype")))
    if dtype is None:
        raise DataError(f"unsupported dtype {header.get('dtype')!r} (expected float32 or int32)", where=where)
    if "shape" in header and len(header["shape"]) == 4:
        shape = tuple(int(n) for n in header["shape"])
    elif "dims" in header and len(header["dims"]) == 3:
        nx, ny, nz = (int(n) for n in header["dims"])
        shape = (int(header.get("components", 1)), nz, ny, nx)
    else:
        raise DataError("header has neither a 4-element 'shape' nor a 3-element 'dims'", where=where)
    data_file = Path(prepared_dir) / header.get("dataFile", f"{name}.{'i32' if dtype == '<i4' else 'f32'}")
    expected = int(np.prod(shape)) * 4
    try:
        actual = data_file.stat().st_size
    except FileNotFoundError:
        raise DataError(f"data file {data_file.name} of prepared volume '{name}' is missing", where=str(data_file), hint="run `llmed data prepare <experiment> --force`") from None
    if actual != expected:
        raise DataError(
            f"data file has {actual} bytes; header shape {list(shape)} needs {expected}", where=str(data_file), hint="the prepared folder is damaged; run `llmed data prepare <experiment> --force`"
        )
    return np.memmap(data_file, dtype=dtype, mode="r", shape=shape)


def one_hot(label_map: torch.Tensor, labels: Sequence[int]) -> torch.Tensor:
    """``(N, 1, K, J, I)`` integer map -> ``(N, L, K, J, I)`` float one-hot over ``labels`` (in that order).

    Voxels whose value is not in ``labels`` (background, ignored structures) are zero in every channel.
    """
    values = torch.as_tensor(list(labels), dtype=label_map.dtype, device=label_map.device).view(1, -1, 1, 1, 1)
    return (label_map == values).to(torch.float32)


class PairSampler:
    """Which training pair step ``s`` uses: epoch-wise permutations seeded by ``(seed, epoch)``.

    Every pair is visited once per epoch (``n`` draws), in a fresh order each epoch. Being a pure function
    of ``(seed, draw index)`` it needs no state in a checkpoint: a resumed run continues identically.
    """

    def __init__(self, n_pairs: int, seed: int):
        if n_pairs <= 0:
            raise DataError("there are no training pairs")
        self.n_pairs = n_pairs
        self.seed = int(seed)
        self._epoch = -1
        self._order: np.ndarray | None = None

    def index(self, draw: int) -> int:
        epoch, within = divmod(int(draw), self.n_pairs)
        if epoch != self._epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.n_pairs)
            self._epoch = epoch
        assert self._order is not None
        return int(self._order[within])

    def batch(self, step: int, batch_size: int) -> list[int]:
        """Pair indices of training step ``step`` (``batch_size`` consecutive draws)."""
        return [self.index(step * batch_size + b) for b in range(batch_size)]


@dataclass(frozen=True)
class Pair:
    moving: str
    fixed: str
    moving_labels: str | None = None
    fixed_labels: str | None = None
    #: prepared true displacement field (3, K, J, I) in voxels of the fixed grid: pairs made by a known deformation
    true_field: str | None = None

    @property
    def has_labels(self) -> bool:
        return self.moving_labels is not None and self.fixed_labels is not None


class PreparedDataset:
    """A prepared folder: its pair lists, label values and grid, and batch loading as torch tensors."""

    def __init__(self, prepared_dir: str | os.PathLike[str]):
        self.dir = Path(prepared_dir)
        pairs_file = self.dir / "pairs.json"
        if not self.dir.is_dir():
            raise DataError("prepared dataset folder does not exist", where=str(self.dir), hint="run `llmed data prepare <experiment>` first")
        try:
            raw = json.loads(pairs_file.read_text())
        except FileNotFoundError:
            raise DataError("prepared folder has no pairs.json", where=str(pairs_file), hint="run `llmed data prepare <experiment>` first") from None
        except json.JSONDecodeError as err:
            raise DataError(f"pairs.json is not valid JSON ({err})", where=str(pairs_file)) from None
        self.raw = raw
        self.title = str(raw.get("title", ""))
        shape = raw.get("shape")
        if not (isinstance(shape, list) and len(shape) == 3):
            raise DataError("pairs.json 'shape' must be [nx, ny, nz]", where=str(pairs_file))
        self.shape_ijk = tuple(int(n) for n in shape)
        self.labels = [int(v) for v in raw.get("labels", [])]
        self.splits: dict[str, list[Pair]] = {}
        for split in ("train", "val", "test"):
            entries = raw.get(split, [])
            if not isinstance(entries, list):
                raise DataError(f"pairs.json '{split}' must be a list", where=str(pairs_file))
            pairs = []
            for i, e in enumerate(entries):
                if not isinstance(e, dict) or "moving" not in e or "fixed" not in e:
                    raise DataError(f"pairs.json {split}[{i}] needs 'moving' and 'fixed'", where=str(pairs_file))
                pairs.append(Pair(e["moving"], e["fixed"], e.get("movingLabels"), e.get("fixedLabels"), e.get("groundTruthField")))
            self.splits[split] = pairs
        self._cache: dict[str, np.memmap] = {}

    @property
    def shape_kji(self) -> tuple[int, int, int]:
        return (self.shape_ijk[2], self.shape_ijk[1], self.shape_ijk[0])

    def fingerprint(self) -> str:
        """Identifies the pair lists, so a resumed run can tell it is reading the same dataset."""
        import hashlib

        return hashlib.sha256(json.dumps({k: self.raw.get(k) for k in ("train", "val", "labels", "shape")}, sort_keys=True).encode()).hexdigest()[:16]

    def volume(self, name: str) -> np.memmap:
        vol = self._cache.get(name)
        if vol is None:
            vol = open_volume(self.dir, name)
            if tuple(vol.shape[1:]) != self.shape_kji:
                raise DataError(f"volume '{name}' has grid {list(vol.shape[1:][::-1])} (nx, ny, nz), pairs.json says {list(self.shape_ijk)}", where=str(self.dir / f"{name}.json"))
            self._cache[name] = vol
        return vol

    def spacing(self, name: str) -> tuple[float, float, float]:
        """Voxel size (mm) along NIfTI i, j, k of prepared volume ``name`` (1 mm where the header has none)."""
        values = read_header(self.dir, name).get("spacing") or [1.0, 1.0, 1.0]
        return tuple(float(v) for v in values[:3])  # type: ignore[return-value]

    def true_field(self, pair: Pair, device: torch.device | str = "cpu") -> torch.Tensor | None:
        """The pair's true field ``(1, 3, K, J, I)`` (voxels; channel c along NIfTI axis c), or None."""
        if pair.true_field is None:
            return None
        field = self.volume(pair.true_field)
        if field.shape[0] != 3:
            raise DataError(f"true field '{pair.true_field}' has {field.shape[0]} components, not 3", where=str(self.dir / f"{pair.true_field}.json"))
        return torch.from_numpy(np.array(field)).unsqueeze(0).to(device)

    def _stack(self, names: list[str], dtype: torch.dtype) -> torch.Tensor:
        # np.array copies out of the memmap: the file stays read-only and torch owns its memory.
        return torch.from_numpy(np.stack([np.array(self.volume(n)) for n in names])).to(dtype)

    def load_batch(self, pairs: Sequence[Pair], device: torch.device | str = "cpu", labels: str = "one-hot") -> dict[str, torch.Tensor]:
        """``{'moving', 'fixed'}`` as ``(N, 1, K, J, I)`` float32, and, when every pair has labels and
        ``pairs.json`` lists label values:

        * ``labels='map'``: the integer label maps ``'moving_label_map'`` / ``'fixed_label_map'`` (N, 1, K, J, I);
        * ``labels='one-hot'`` (default): those plus one-hot ``'moving_labels'`` / ``'fixed_labels'``
          ``(N, L, K, J, I)`` float32 - the loss contract's names;
        * ``labels='none'``: no labels. One-hot over many labels is large (116 AAL labels at 64×80×64 are
          300 MB a pair), so the trainer asks for it only when a loss term uses labels.
        """
        if labels not in ("none", "map", "one-hot"):
            raise ValueError(f"labels must be 'none', 'map' or 'one-hot', not {labels!r}")
        batch = {
            "moving": self._stack([p.moving for p in pairs], torch.float32).to(device),
            "fixed": self._stack([p.fixed for p in pairs], torch.float32).to(device),
        }
        if labels != "none" and self.labels and all(p.has_labels for p in pairs):
            for side, names in (("moving", [p.moving_labels for p in pairs]), ("fixed", [p.fixed_labels for p in pairs])):
                label_map = self._stack(names, torch.int32).to(device)  # type: ignore[arg-type]
                batch[f"{side}_label_map"] = label_map
                if labels == "one-hot":
                    batch[f"{side}_labels"] = one_hot(label_map, self.labels)
        return batch
