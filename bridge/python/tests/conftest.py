"""Shared pytest setup: import paths and tiny Hugging Face checkpoints (built once per session)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PYTHON_ROOT = Path(__file__).resolve().parents[1]  # bridge/python
TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = PYTHON_ROOT.parents[1]
PLUGINS_DIR = REPO_ROOT / "plugins"

for p in (PYTHON_ROOT, TESTS_DIR):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """``tiny_checkpoint(family, sharded=False, **sizes) -> Path``: a tiny HF checkpoint folder, cached per session."""
    from fixtures import build_tiny_checkpoint

    cache: dict = {}

    def make(family: str, sharded: bool = False, **sizes) -> Path:
        key = (family, sharded, tuple(sorted(sizes.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"ckpt-{family}{'-sharded' if sharded else ''}")
            build_tiny_checkpoint(family, out, sharded=sharded, **sizes)
            cache[key] = out
        return cache[key]

    return make


@pytest.fixture(scope="session")
def plugins_dir() -> Path:
    return PLUGINS_DIR
