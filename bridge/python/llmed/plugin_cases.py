"""Per-plugin test cases (``plugins/<id>/tests/cases.json``), the Python decoder; the TypeScript one is
packages/core/src/plugin-cases.ts and follows the same rules (read its module comment for the format).

Minimal version written with the Metric references (helper h-metrics); the full one comes with the loss
and decoder cases. Tensor values decode to numpy arrays in the stated dtype; other JSON passes through.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_TOLERANCE = 1e-6
_DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "uint8": np.uint8}


def case_value(value: Any) -> Any:
    """A tensor VALUE ({"shape"} with one of "data", "sine", "boxes") as a numpy array; anything else unchanged."""
    if not isinstance(value, dict) or not isinstance(value.get("shape"), list):
        return value
    encodings = [k for k in ("data", "sine", "boxes") if k in value]
    if not encodings:
        return value  # an expected output shape
    if len(encodings) > 1:
        raise ValueError(f"a value gives {' and '.join(encodings)}; give one of data, sine, boxes")
    shape = tuple(int(s) for s in value["shape"])
    dtype = _DTYPES[value.get("dtype", "int32" if "boxes" in value else "float32")]
    n = math.prod(shape)
    if "data" in value:
        if len(value["data"]) != n:
            raise ValueError(f"data has {len(value['data'])} numbers, shape {list(shape)} needs {n}")
        return np.asarray(value["data"], dtype=np.float64).astype(dtype).reshape(shape)
    if "sine" in value:
        s = value["sine"]
        i = np.arange(n, dtype=np.float64)
        # float64 first, one rounding on storing: the same bits as TypeScript's Math.sin into a Float32Array
        return (float(s.get("offset", 0.0)) + float(s.get("scale", 1.0)) * np.sin(1.7 * i + float(s.get("seed", 0.0)))).astype(dtype).reshape(shape)
    out = np.zeros(shape, dtype=dtype)
    for box in value["boxes"]:
        out[tuple(slice(int(lo), int(hi)) for lo, hi in zip(box["lo"], box["hi"]))] = box["label"]
    return out


def read_cases(plugin_dir: str | Path) -> list[dict]:
    """The cases of ``plugin_dir/tests/cases.json`` with options, inputs, expected and tolerance filled in;
    an empty list when the plugin has none. Inputs stay encoded (decode each with :func:`case_value`)."""
    path = Path(plugin_dir) / "tests" / "cases.json"
    if not path.is_file():
        return []
    doc = json.loads(path.read_text())
    out = []
    for t, c in enumerate(doc["cases"]):
        if not isinstance(c.get("name"), str) or not c["name"]:
            raise ValueError(f"{path} cases[{t}] needs a name")
        out.append({"name": c["name"], "options": dict(c.get("options") or {}), "inputs": dict(c.get("inputs") or {}),
                    "expected": dict(c.get("expected") or {}), "tolerance": float(c.get("tolerance", DEFAULT_TOLERANCE))})
    return out
