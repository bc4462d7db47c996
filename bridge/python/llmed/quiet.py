"""Library chatter off for the processes llmed starts (the bridge, export, distributed training)."""

from __future__ import annotations

import os


def quiet_libraries() -> None:
    """Silence library chatter that tells an llmed user nothing — deprecation notices about transformers' and
    torch's own internals, transformers' weight-loading progress bar, torch.onnx's "torchvision is not
    installed" — unless ``LLMED_DEBUG`` is set (``llmed … --debug``). llmed's own progress and errors do not
    go through these channels. Runs before transformers is imported (it reads the progress-bar switch then)."""
    if os.environ.get("LLMED_DEBUG"):
        return
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # torch (re)sets its loggers' levels from TORCH_LOGS when it is imported ("-onnx": errors only), and keeps a
    # level set after that
    os.environ.setdefault("TORCH_LOGS", "-onnx")
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
