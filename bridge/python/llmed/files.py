"""Small file and JSON helpers shared by the bridge modules (no torch import, so light modules can use them)."""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any

# Temporaries left by a kill are cleaned in llmed.atomic, beside the writers; the name stays importable here.
from .atomic import remove_stale_temporaries  # noqa: F401

# The environment variable naming the llmed workspace, the same one the TypeScript side reads
# (packages/core/src/workspace.ts, findWorkspaceRoot): one name in both languages.
WORKSPACE_ENV = "LLMED_WORKSPACE"


def workspace_root_from_env() -> str | None:
    """``$LLMED_WORKSPACE`` when set and non-empty, else None."""
    return os.environ.get(WORKSPACE_ENV) or None


def sha256_file(path: str | os.PathLike[str], chunk: int = 16 << 20) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def json_safe(value: Any) -> Any:
    """Strict JSON for JavaScript's JSON.parse: non-finite floats become null, keys become strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
