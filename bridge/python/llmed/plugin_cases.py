"""Per-plugin test cases, ``plugins/<id>/tests/cases.json``, as the Python tests read them.

The file is ``{"cases": [{"name", "options", "inputs", "expected", "tolerance"}]}``; tensor VALUEs are
``{"shape", "data"}`` (literal, flat C order), ``{"shape", "sine": {"seed", "scale", "offset"}}``
(``offset + scale * sin(1.7 * i + seed)`` in float64, then float32) or ``{"shape", "boxes", "dtype"}``
(zeros with half-open boxes filled, later boxes winning). Anything else passes through unchanged.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_CASE_TOLERANCE", "read_cases", "case_value"]


DEFAULT_CASE_TOLERANCE = 1e-6


def read_cases(plugin_dir: str | Path) -> list[dict]:
    """The cases of the plugin in ``plugin_dir`` (empty when it has no tests/cases.json), each with
    ``options``, ``inputs``, ``expected`` and ``tolerance`` filled in."""
    path = Path(plugin_dir) / "tests" / "cases.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf8"))
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list):
        raise ValueError(f"{path} must hold {{\"cases\": [...]}}")
    out = []
    for t, case in enumerate(cases):
        if not isinstance(case.get("name"), str) or not case["name"]:
            raise ValueError(f"{path} cases[{t}]: every case needs a name")
        out.append({**case, "options": case.get("options", {}), "inputs": case.get("inputs", {}),
                    "expected": case.get("expected", {}), "tolerance": case.get("tolerance", DEFAULT_CASE_TOLERANCE)})
    return out


def case_value(value: Any):
    """A VALUE of a case as a torch tensor, or the value itself when it is not a tensor VALUE."""
    if not isinstance(value, dict) or "shape" not in value:
        return value
    import torch

    shape = tuple(int(n) for n in value["shape"])
    n = math.prod(shape)
    if "data" in value:
        dtype = torch.int32 if value.get("dtype") == "int32" else torch.float32
        return torch.tensor(value["data"], dtype=torch.float64).to(dtype).reshape(shape)
    if "sine" in value:
        s = value["sine"]
        i = torch.arange(n, dtype=torch.float64)
        out = float(s.get("offset", 0.0)) + float(s.get("scale", 1.0)) * torch.sin(1.7 * i + float(s.get("seed", 0.0)))
        return out.to(torch.float32).reshape(shape)
    if "boxes" in value:
        dtype = torch.int32 if value.get("dtype", "int32") == "int32" else torch.float32
        out = torch.zeros(shape, dtype=dtype)
        for box in value["boxes"]:
            lo, hi = box["lo"], box["hi"]
            index = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
            out[(Ellipsis, *index) if len(index) < len(shape) else index] = box["label"]
        return out
    return value
