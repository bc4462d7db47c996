"""Small file and JSON helpers shared by the bridge modules (no torch import, so light modules can use them)."""
from __future__ import annotations

import hashlib
import math
import os
from typing import Any

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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str], stem: str = "") -> list[str]:
    """Remove ``<stem>*.tmp-<pid>`` files and folders in ``folder`` whose writer (process ``pid``) is gone:
    what a kill leaves behind (atomic writes go to ``<name>.tmp-<pid>`` first). Returns the names removed."""
    import re
    import shutil

    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    pattern = re.compile(re.escape(stem) + r".*\.tmp-(\d+)$")
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
        removed.append(entry.name)
    return removed
