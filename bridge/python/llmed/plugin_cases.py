"""Per-plugin test cases (``plugins/<id>/tests/cases.json``), the format both languages' walkers read.

Minimal version of the shared decoder (``read_cases``, ``case_value``); see /work/helpers/common.md for the
VALUE forms: literal ``{"shape", "data"}``, ``{"shape", "sine": {seed, scale, offset}}`` (value[i] = offset +
scale·sin(1.7·i + seed) in float64, then float32), ``{"shape", "boxes": [...], "dtype"}``; anything else
passes through unchanged.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def read_cases(plugin_dir: str | Path) -> list[dict]:
    """The cases of one plugin folder (empty when it has no tests/cases.json)."""
    path = Path(plugin_dir) / "tests" / "cases.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list):
        raise ValueError(f"{path}: expected {{\"cases\": [...]}}")
    return cases


def case_value(value: Any) -> Any:
    """Decode one VALUE into a float32/int numpy array, or return it unchanged."""
    if not isinstance(value, dict) or "shape" not in value:
        return value
    shape = tuple(int(n) for n in value["shape"])
    count = math.prod(shape)
    if "data" in value:
        dtype = np.int64 if value.get("dtype") in ("int32", "int64") else np.float32
        out = np.asarray(value["data"], dtype=np.float64).astype(dtype).reshape(shape)
        return out.astype(np.int32) if value.get("dtype") == "int32" else out
    if "sine" in value:
        s = value["sine"]
        i = np.arange(count, dtype=np.float64)
        out = float(s.get("offset", 0.0)) + float(s.get("scale", 1.0)) * np.sin(1.7 * i + float(s.get("seed", 0.0)))
        return out.astype(np.float32).reshape(shape)
    if "boxes" in value:
        out = np.zeros(shape, dtype=np.int32 if value.get("dtype", "int32") == "int32" else np.float32)
        for box in value["boxes"]:
            index = tuple(slice(int(lo), int(hi)) for lo, hi in zip(box["lo"], box["hi"]))
            out[(...,) + index] = box["label"]
        return out
    return value
