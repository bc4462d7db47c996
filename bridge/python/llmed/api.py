"""The functions the TypeScript bridge calls (through pythonia).

Every function returns a plain JSON-able dict ``{"ok": True, ...}`` or
``{"ok": False, "kind", "message", "traceback", "where"?, "hint"?}`` and never raises: pythonia delivers
Python exceptions to Node with an empty message, so errors travel as data. ``kind`` is an llmed error
kind ('data', 'checkpoint', 'config', 'shape', 'nan', or 'bridge' for anything unexpected).

Node calls :func:`invoke` (``invoke(name, json_args) -> json_text``): one bridge round trip per call,
and the result arrives as a JSON string instead of a Python-object proxy that would need more round
trips to read. Training runs in a background thread (train.py); Node starts it, then polls
:func:`status` - no call here blocks for long except :func:`wait`, which takes a timeout.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .files import json_safe
from .quiet import quiet_libraries

quiet_libraries()  # before transformers or torch.onnx are imported

_trainer = None  # the current (or last) Trainer; one training run per Python process at a time
_trainer_lock = threading.Lock()


def _error(kind: str, message: str, tb: str | None = None, **extra: Any) -> dict:
    out = {"ok": False, "kind": kind, "message": message, "traceback": tb}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def structured(fn: Callable[..., dict]) -> Callable[..., dict]:
    """Turn any exception into an ``ok: false`` result carrying the llmed kind, message and traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> dict:
        try:
            result = fn(*args, **kwargs)
            return {"ok": True, **(result or {})}
        except Exception as err:
            kind = getattr(err, "kind", None)
            kind = kind if isinstance(kind, str) else "bridge"
            message = str(err) or type(err).__name__
            if kind == "bridge":
                message = f"{type(err).__name__}: {message}"
            return _error(kind, message, traceback.format_exc(), where=getattr(err, "where", None), hint=getattr(err, "hint", None))

    return wrapper


def _require_plugins(plugins: Any, spec_path: str) -> None:
    """A spec read from a file is built only with the caller's table of registered plugins (id -> entry)."""
    if not isinstance(plugins, dict) or not all(isinstance(v, dict) for v in plugins.values()):
        err = ValueError("the registered plugins (id -> python entry) must be passed with a spec read from a file; its own python paths are never imported from")
        err.kind = "bridge"  # type: ignore[attr-defined]
        err.where = spec_path  # type: ignore[attr-defined]
        raise err


def _read_json(path: str, what: str, kind: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        err = FileNotFoundError(f"{what} {path} does not exist")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        err = ValueError(f"{what} {path} is not valid JSON: {type(e).__name__}: {e}")
    err.kind = kind  # type: ignore[attr-defined]
    err.where = path  # type: ignore[attr-defined]
    raise err


# ---- bridge plumbing ----------------------------------------------------------------------------------


@structured
def add_import_paths(paths: list[str]) -> dict:
    """Put the bridge package and each plugin's python root on sys.path (front, once each)."""
    added = []
    for p in paths:
        p = os.path.abspath(p)
        if p not in sys.path:
            sys.path.insert(0, p)
            added.append(p)
    return {"added": added}


@structured
def exit_with_parent() -> dict:
    """Have the kernel kill this process when its parent (Node) dies, even by SIGKILL: an export or a
    training run must never outlive the command that started it (Linux; elsewhere nothing happens)."""
    if sys.platform != "linux":
        return {"armed": False}
    import ctypes

    PR_SET_PDEATHSIG = 1
    libc = ctypes.CDLL(None, use_errno=True)
    armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if armed and os.getppid() == 1:  # the parent died before the call
        os.kill(os.getpid(), signal.SIGKILL)
    return {"armed": bool(armed)}


@structured
def ignore_interrupts() -> dict:
    """Ctrl-C in a terminal sends SIGINT to Node *and* to this child. Node owns it (it asks the trainer to
    stop and waits for the clean save), so Python ignores SIGINT. Must run in the main thread, which is
    where pythonia executes calls."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return {"ignored": True}
    return {"ignored": False}


# ---- the API ------------------------------------------------------------------------------------------


@structured
def check_environment() -> dict:
    import numpy
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    for name in ("transformers", "peft", "safetensors", "gguf"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:
            versions[name] = None
    cuda = torch.cuda.is_available()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    return {
        "versions": versions,
        "executable": sys.executable,
        "pid": os.getpid(),
        "cudaAvailable": cuda,
        "cudaVersion": torch.version.cuda,
        "devices": devices,
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        "device": "cuda" if cuda else "cpu",
        "threads": torch.get_num_threads(),
    }


@structured
def start_training(run_dir: str, spec_path: str, config_path: str, prepared_dir: str, options_json: str = "{}") -> dict:
    """Start a training run in a background thread and return at once; poll :func:`status`."""
    global _trainer
    from .train import Trainer

    options = json.loads(options_json) if isinstance(options_json, str) else dict(options_json or {})
    spec = _read_json(spec_path, "model spec", "config")
    config = _read_json(config_path, "experiment config", "config")
    with _trainer_lock:
        if _trainer is not None and _trainer.alive:
            err = RuntimeError(f"a training run is already going on in this Python process ({_trainer.run_dir})")
            raise err
        # The spec file lives in the run folder: its python paths are never imported from (llmed.assemble).
        _require_plugins(options.get("plugins"), spec_path)
        # ``options.trainer`` ("module:Class", as under torchrun): report generation's llmed.report:ReportTrainer
        if options.get("trainer"):
            from .distributed import load_trainer_class

            trainer = load_trainer_class(str(options["trainer"]))(run_dir, spec, config, prepared_dir, options)
        else:
            trainer = Trainer(run_dir, spec, config, prepared_dir, options)
        _trainer = trainer
        trainer.start()
    return {"runDir": str(Path(run_dir).resolve()), "pid": os.getpid()}


def _no_run() -> dict:
    return _error("bridge", "no training run has been started in this Python process")


def status() -> dict:
    trainer = _trainer
    if trainer is None:
        return _no_run()
    try:
        return {"ok": True, **trainer.status()}
    except Exception as err:  # status must never raise
        return _error("bridge", f"{type(err).__name__}: {err}", traceback.format_exc())


def stop() -> dict:
    trainer = _trainer
    if trainer is None:
        return _no_run()
    trainer.stop()
    return {"ok": True, "stopping": trainer.alive}


def set_threads(threads: int) -> dict:
    """The running training uses ``threads`` intra-op threads from its next step on (the demo gives the
    registration model the second core once the report generator beside it is done)."""
    trainer = _trainer
    if trainer is None:
        return _no_run()
    trainer.set_threads(int(threads))
    return {"ok": True, "threads": int(threads)}


def wait(timeout_s: float = 10.0) -> dict:
    """Wait up to ``timeout_s`` seconds for the run to end; returns its status either way."""
    trainer = _trainer
    if trainer is None:
        return _no_run()
    try:
        return {"ok": True, **trainer.wait(float(timeout_s))}
    except Exception as err:
        return _error("bridge", f"{type(err).__name__}: {err}", traceback.format_exc())


@structured
def check_report_llm(spec_path: str, workspace_root: str | None = None) -> dict:
    """The Python side of a report spec's causal LM, without reading weights: the checkpoint's config loads
    with transformers' Auto classes as one of the family's model types, and its tokenizer loads, takes the
    image token as one token and has the end-of-text token the options name."""
    from pathlib import Path as _Path

    from transformers import AutoConfig

    from .causal_lm import _folder, load_tokenizer

    spec = _read_json(spec_path, "model spec", "config")
    node = spec.get("llm") or {}
    options = node.get("options") or {}
    folder = _folder(str(options.get("checkpoint", "")), workspace_root)
    if not _Path(folder, "config.json").is_file():
        return {"ok": True, "checked": [], "skipped": [node.get("path")]}
    where = f"{node.get('path')} ({node.get('id')})"
    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        types = (options.get("family") or {}).get("modelTypes") or []
        if types and config.model_type not in types:
            raise ValueError(f"model_type {config.model_type!r} is not one of {', '.join(types)}")
        tok, image_id, eot_id, _, _ = load_tokenizer(options, _Path(folder))
    except Exception as e:  # noqa: BLE001 — every reason is reported as the node's
        return _error("plugin", f"{where}: the causal LM cannot be built: {e}", where=node.get("path"))
    return {"ok": True, "checked": [node.get("path")], "imageTokenId": image_id, "endOfTextId": eot_id, "endOfText": tok.convert_ids_to_tokens(eot_id), "vocab": len(tok)}


@structured
def check_llm_nodes(spec_path: str, workspace_root: str | None = None, plugins: dict | None = None) -> dict:
    """Whether the Python side of each LLM backbone node can be built, without reading weights: its plugin
    module imports and names its family (``FAMILY``, a :class:`llmed.llm.Family`), the family's transformers
    classes import, and the checkpoint's config loads as that family (its code from ``plugins`` by id when
    given, as everywhere). Nodes whose checkpoint folder is not there yet are left to training to report."""
    from pathlib import Path as _Path

    from .assemble import load_factory, python_entry
    from .llm import Family, load_text_config, resolve_checkpoint_dir

    spec = _read_json(spec_path, "model spec", "config")
    checked, skipped = [], []
    for node in spec.get("block") or []:
        if node.get("kind") != "LLMBackbone" or node.get("sharesWith"):
            continue
        where = f"{node.get('path')} ({node.get('id')})"
        options = node.get("options") or {}
        folder = resolve_checkpoint_dir(options["checkpoint"], workspace_root) if options.get("checkpoint") else None
        if folder is None or not _Path(folder, "config.json").is_file():
            skipped.append(node.get("path"))
            continue
        try:
            factory = load_factory(python_entry(node, plugins), workspace_root)
            module = sys.modules.get(getattr(factory, "__module__", "") or "")
            family = getattr(module, "FAMILY", None)
            if not isinstance(family, Family):
                raise TypeError(f"plugin module {getattr(module, '__name__', '?')} has no FAMILY = llmed.llm.Family.from_json(...)")
            family.classes()
            load_text_config(family, _Path(folder))
        except Exception as e:  # noqa: BLE001 — every reason is reported as the node's
            return _error("plugin", f"{where}: the Python side cannot be built: {e}", where=node.get("path"))
        checked.append(node.get("path"))
    return {"ok": True, "checked": checked, "skipped": skipped}


@structured
def describe_model(spec_path: str, workspace_root: str | None = None, plugins: dict | None = None) -> dict:
    """Build the model of a spec and count its parameters, in total and per top-level part.
    ``workspace_root`` resolves relative LLM checkpoint folders (default: the current directory);
    ``plugins`` is the table of registered plugins (id -> python entry) the nodes are built from."""
    import torch

    from .assemble import build_model

    spec = _read_json(spec_path, "model spec", "config")
    _require_plugins(plugins, spec_path)
    torch.manual_seed(0)
    model = build_model(spec, workspace_root, plugins)

    def count(module: torch.nn.Module) -> dict:
        seen, total, trainable = set(), 0, 0
        for p in module.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
        return {"total": total, "trainable": trainable, "frozen": total - trainable}

    parts = {name: count(child) for name, child in model.named_children()}
    buffers = sum(b.numel() for b in model.buffers())
    # Per spec node (path, id, cascade step, counts), when the assembled model can say.
    nodes = model.describe().get("nodes", []) if hasattr(model, "describe") else []
    return {"parameters": count(model), "parts": parts, "nodes": nodes, "buffers": buffers}


@structured
def export_model(
    run_dir: str, tag: str = "best", out_dir: str | None = None, workspace_root: str | None = None, threads: int | None = None, plugins: dict | None = None, prompts: dict | None = None
) -> dict:
    """ONNX export of a run with its manifest and parity check: a registration run's field predictor
    (llmed.export), or a report run's vision path and decoder (llmed.export_report, ``prompts`` from the
    TypeScript side); the model is built from ``plugins`` (the registered plugins by id), never from paths
    in the run folder."""
    from .export import export_run

    _require_plugins(plugins, str(Path(run_dir) / "spec.json"))
    spec = json.loads((Path(run_dir) / "spec.json").read_text()) if (Path(run_dir) / "spec.json").is_file() else {}
    if spec.get("task") == "report":
        from .export_report import export_report_run

        if not prompts:
            raise ValueError("a report export needs the prompt templates (prompts)")
        manifest = export_report_run(run_dir, tag, out_dir, plugins=plugins, prompts=prompts, workspace_root=workspace_root)
        out = Path(out_dir).resolve() if out_dir else Path(run_dir).resolve() / "export"
        return {"exportDir": str(out), "manifest": manifest}
    manifest = export_run(run_dir, tag, out_dir, workspace_root=workspace_root, threads=threads, plugins=plugins)
    out = Path(out_dir).resolve() if out_dir else Path(run_dir).resolve() / "export"
    return {"exportDir": str(out), "manifest": manifest}


API: dict[str, Callable[..., dict]] = {
    "add_import_paths": add_import_paths,
    "ignore_interrupts": ignore_interrupts,
    "exit_with_parent": exit_with_parent,
    "check_environment": check_environment,
    "start_training": start_training,
    "status": status,
    "stop": stop,
    "set_threads": set_threads,
    "wait": wait,
    "describe_model": describe_model,
    "export_model": export_model,
}


def invoke(name: str, args_json: str = "[]") -> str:
    """Bridge entry point: call API function ``name`` with the JSON list (positional) or object (keyword)
    of arguments, and return the result as strict JSON text. Never raises."""
    try:
        fn = API.get(name)
        if fn is None:
            result = _error("bridge", f"unknown bridge function {name!r}; known: {', '.join(sorted(API))}")
        else:
            args = json.loads(args_json) if args_json else []
            result = fn(**args) if isinstance(args, dict) else fn(*args)
    except Exception as err:  # bad arguments (a TypeError from the call itself)
        result = _error("bridge", f"{type(err).__name__}: {err}", traceback.format_exc())
    return json.dumps(json_safe(result))
