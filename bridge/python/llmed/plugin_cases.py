"""Per-plugin test cases: ``plugins/<id>/tests/cases.json``, read by the TypeScript and the Python walkers.

File format::

    { "cases": [ { "name": str,
                   "options": {...},                 # partial; defaults come from the descriptor's schema
                   "inputs": { name: VALUE },
                   "expected": { name: VALUE | number | {"shape": [..]} },
                   "tolerance": abs,                  # default 1e-6
                   ...                                 # walker-specific keys pass through (see below)
                 } ] }

``VALUE`` (a tensor, flat C order in torch/numpy layout, e.g. ``(N, C, K, J, I)``):

- ``{"shape": [..], "data": [..]}`` — literal (float32 unless ``"dtype"`` says otherwise);
- ``{"shape": [..], "sine": {"seed": s, "scale": a, "offset": b}}`` — ``value[i] = b + a·sin(1.7·i + s)``,
  computed in float64, then float32 (both languages produce the same bits from the same formula);
- ``{"shape": [..], "boxes": [{"label": L, "lo": [..], "hi": [..]}], "dtype": "int32"}`` — zeros with each
  half-open box ``lo ≤ x < hi`` set to ``L``, later boxes winning; ``lo``/``hi`` name the *last*
  ``len(lo)`` axes (the spatial ones when shorter than the shape), the leading axes are covered whole;
- any other JSON (strings, numbers, ``{"shape": [..]}`` alone as an expected shape) passes through
  unchanged; a list is decoded item by item (a list of tensors stays a list).

The Python walker (bridge/python/tests/test_plugin_cases.py) also reads ``"shapes"``: the node's shape
inputs as the TypeScript composer gives them to the factory (``{"tokens": {"type": "tokens", …}}``), for
modules whose factory needs them; ``inputs`` then holds the forward call's tensors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CASES_FILE", "DEFAULT_TOLERANCE", "read_cases", "case_value"]

CASES_FILE = Path("tests") / "cases.json"
DEFAULT_TOLERANCE = 1e-6
_TENSOR_KEYS = ("data", "sine", "boxes")


def read_cases(plugin_dir: str | Path) -> list[dict]:
    """The cases of the plugin folder ``plugin_dir`` (``[]`` when it has no ``tests/cases.json``), each with
    ``options``, ``inputs`` and ``expected`` present (empty when absent) and ``tolerance`` filled in."""
    path = Path(plugin_dir) / CASES_FILE
    if not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    cases = doc.get("cases") if isinstance(doc, dict) else None
    if not isinstance(cases, list):
        raise ValueError(f'{path}: expected {{"cases": [...]}}')
    out = []
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("name"), str):
            raise ValueError(f'{path}: cases[{i}] needs a string "name"')
        out.append(
            {
                **case,
                "options": dict(case.get("options") or {}),
                "inputs": dict(case.get("inputs") or {}),
                "expected": dict(case.get("expected") or {}),
                "tolerance": float(case.get("tolerance", DEFAULT_TOLERANCE)),
            }
        )
    return out


def _shape(value: dict) -> tuple[int, ...]:
    shape = value.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f'a case tensor needs "shape": a list of sizes, got {shape!r}')
    return tuple(shape)


def case_value(value: Any) -> Any:
    """Decode one case value: tensors to numpy arrays (float32, or ``"dtype"``); anything else unchanged."""
    if isinstance(value, list):
        return [case_value(v) for v in value]
    if not isinstance(value, dict) or not any(k in value for k in _TENSOR_KEYS):
        return value
    shape = _shape(value)
    size = math.prod(shape)
    if "data" in value:
        data = np.asarray(value["data"], dtype=np.float64)
        if data.size != size:
            raise ValueError(f"a case tensor of shape {list(shape)} needs {size} values, got {data.size}")
        return data.reshape(shape).astype(value.get("dtype", "float32"))
    if "sine" in value:
        s = value["sine"]
        i = np.arange(size, dtype=np.float64)
        data = float(s.get("offset", 0.0)) + float(s.get("scale", 1.0)) * np.sin(1.7 * i + float(s.get("seed", 0.0)))
        return data.astype(np.float32).reshape(shape).astype(value.get("dtype", "float32"))
    out = np.zeros(shape, dtype=value.get("dtype", "int32"))
    for box in value["boxes"]:
        lo, hi = list(box["lo"]), list(box["hi"])
        if len(lo) != len(hi) or len(lo) > len(shape):
            raise ValueError(f"box lo {lo} / hi {hi} do not fit a tensor of shape {list(shape)}")
        lead = len(shape) - len(lo)
        index = (slice(None),) * lead + tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        out[index] = box["label"]
    return out
