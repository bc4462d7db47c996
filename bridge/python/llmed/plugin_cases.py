"""Per-plugin test cases (``plugins/<id>/tests/cases.json``), the Python side of
packages/core/src/plugin-cases.ts. Minimal version for the text metrics, whose inputs are strings and pass
through; literal tensors ``{"shape", "data"}`` decode to float32 numpy arrays."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULT_CASE_TOLERANCE = 1e-6


def case_value(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("shape"), list) and "data" in value:
        import numpy as np

        return np.asarray(value["data"], dtype=np.float32).reshape(value["shape"])
    return value


def read_cases(plugin_dir: str | Path) -> list[dict[str, Any]]:
    file = Path(plugin_dir) / "tests" / "cases.json"
    if not file.exists():
        return []
    doc = json.loads(file.read_text(encoding="utf8"))
    out = []
    for t, c in enumerate(doc["cases"]):
        if not isinstance(c.get("name"), str) or not c["name"]:
            raise ValueError(f"{file} cases[{t}]: every case needs a name")
        out.append({
            "name": c["name"],
            "options": c.get("options", {}),
            "inputs": c.get("inputs", {}),
            "expected": c.get("expected", {}),
            "tolerance": c.get("tolerance", DEFAULT_CASE_TOLERANCE),
        })
    return out
