"""llmed.quiet: the processes llmed starts keep library chatter out of a user's terminal, except with --debug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BRIDGE = Path(__file__).resolve().parents[1]

PROBE = """
import warnings, logging, os
import llmed.api  # what the bridge imports first
warnings.warn("library internals changed", FutureWarning)
import torch  # torch sets its loggers' levels from TORCH_LOGS on import
logging.getLogger("torch.onnx._internal.exporter._registration").warning("torchvision is not installed")
print(os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"))
"""


def run_probe(debug: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LLMED_DEBUG", "TORCH_LOGS", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")}
    env["PYTHONPATH"] = str(BRIDGE)
    if debug:
        env["LLMED_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)


def test_library_chatter_is_silenced_without_debug():
    out = run_probe(debug=False)
    assert out.returncode == 0, out.stderr
    assert "FutureWarning" not in out.stderr and "torchvision" not in out.stderr
    assert out.stdout.strip() == "1"


def test_debug_keeps_it():
    out = run_probe(debug=True)
    assert out.returncode == 0, out.stderr
    assert "FutureWarning" in out.stderr and "torchvision" in out.stderr
    assert out.stdout.strip() == "None"
