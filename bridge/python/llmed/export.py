"""ONNX export of a trained run's field predictor, with its manifest and a parity check.

``python -m llmed.export <run_dir> [--tag best|last] [--out DIR]`` (or :func:`export_run`) writes

    <run>/export/model.onnx        the field predictor (moving, fixed) -> field, fp32, LoRA merged
    <run>/export/model.onnx.data   its weights, only when the graph would pass protobuf's 2 GB limit
    <run>/export/manifest.json     everything inference needs to reproduce training's view of a pair

What is exported, and what is not
---------------------------------
Only the network that predicts the final displacement field: ``RegistrationModel.forward(moving,
fixed)['fields'][-1]`` of the run's own ``spec.json`` with checkpoint ``tag`` loaded. Warping, field
upsampling and metrics stay out of the graph: they are TypeScript at inference (a plain TypeScript
trilinear warp beat onnxruntime's 5-D GridSample, TOOLCHAIN.md). The decoder's internal warps of the
moving image (LLaMA-Reg feeds each scale's warped image to the next) are part of the network and are
exported, which is why the opset is at least 20 (5-D GridSample).

* **LoRA** adapters are folded into their base weights first (``llm.merge_lora``); the graph has no
  ``lora_`` tensors and the manifest says how many layers were merged.
* **fp32** throughout (the run's model is rebuilt on CPU in float32; AMP only ever ran on CUDA).
* **External data** when the weights exceed ~1.8 GB (protobuf refuses messages over 2 GB; two
  LLaMA-3-8B layers are about 1.75 GB in fp32), or when asked (``--external-data always``).
* **Half resolution** (LLM-Morph): when the spec's input grid differs from the prepared grid, the graph
  takes images at the network grid. The manifest's ``resize`` block says how inference gets there
  (corner-aligned trilinear resize of both preprocessed images) and how the field comes back (corner-
  aligned trilinear upsampling, displacement along axis c times (N_c - 1)/(n_c - 1)), exactly what
  ``Trainer._forward`` does in training.

Parity
------
Before anything is renamed into place, onnxruntime (Python, CPU) runs the exported file on a real
prepared pair (the first test pair with labels) and is compared with torch on the same tensors: the
largest absolute field difference in voxels (at the prepared resolution) and the Dice of the moving
labels warped (nearest) by each field. The export fails, leaving nothing behind, unless the field
difference is below 1e-3 voxels and the two Dice agree to 4 decimals. The numbers go into the manifest.

Atomicity
---------
Everything is written into ``<out>.tmp-<pid>/`` first; only a complete, checked export is renamed to
``<out>`` (a previous export is moved aside first and deleted after the rename). An existing ``<out>`` is
replaced only when it is an export (it holds manifest.json) or empty: a user's folder is never deleted.
Staging folders of exports that were killed (their process is gone) are removed at the next export.

Plugin code
-----------
The model is rebuilt from the run's spec.json with the code of the *registered* plugins (``plugins``:
id -> python entry, from the workspace's registry): the paths a run folder names are never imported.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .atomic import publish_folder, recover_folder, staging_folder
from .files import json_safe, sha256_file, workspace_root_from_env

EXPORT_FORMAT = "llmed-export-v1"
MIN_OPSET = 20  # 5-D GridSample (the decoder's internal warps) needs opset 20
FIELD_TOLERANCE_VOXELS = 1e-3
DICE_DECIMALS = 4
# protobuf caps a serialised message at 2 GiB; leave room for the graph itself.
EXTERNAL_DATA_THRESHOLD_BYTES = int(1.8 * 1024**3)
INPUT_NAMES = ("moving", "fixed")
OUTPUT_NAME = "field"


class ExportError(Exception):
    """An export that cannot be made or did not pass its checks. ``kind`` is the llmed error kind."""

    def __init__(self, message: str, kind: str = "bridge", where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.where = where
        self.hint = hint


class FieldPredictor(nn.Module):
    """``(moving, fixed) -> final displacement field (N, 3, K, J, I)`` in voxels of the network grid."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return self.model(moving, fixed)["fields"][-1]


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------


def find_workspace_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding workspace.json and package.json (an llmed workspace)."""
    for folder in [start, *start.parents]:
        if (folder / "workspace.json").is_file() and (folder / "package.json").is_file():
            return folder
    return None


def _read_json(path: Path, what: str, kind: str = "checkpoint") -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ExportError(f"{what} is missing", kind=kind, where=str(path), hint="name a run folder written by `llmed train` (runs/<experiment>/<timestamp>)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ExportError(f"{what} is not valid JSON ({type(err).__name__}: {err})", kind=kind, where=str(path)) from None


def _kji(ijk) -> tuple[int, int, int]:
    i, j, k = (int(n) for n in ijk)
    return (k, j, i)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def mean_dice(warped: torch.Tensor, fixed: torch.Tensor, labels: list[int]) -> tuple[float, int]:
    """Mean Dice over the labels present in either map (training's validation definition)."""
    from .train import dice_per_label

    scores = [s for s in dice_per_label(warped, fixed, labels) if not math.isnan(s)]
    return (sum(scores) / len(scores) if scores else float("nan")), len(scores)


def _choose_parity_pair(dataset) -> tuple[str, Any]:
    for split in ("test", "val", "train"):
        pairs = dataset.splits.get(split) or []
        labelled = [p for p in pairs if p.has_labels]
        if labelled:
            return split, labelled[0]
        if pairs:
            return split, pairs[0]
    raise ExportError("the prepared dataset has no pairs to check the export on", kind="data", where=str(dataset.dir / "pairs.json"), hint="run `llmed data prepare <experiment> --force`")


def _onnx_summary(path: Path) -> dict:
    """Opset, inputs/outputs with static shapes, operator types and initializer names (no weights loaded)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)

    def shape_of(value_info) -> list[int | str]:
        dims = value_info.type.tensor_type.shape.dim
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]

    init_names = {i.name for i in proto.graph.initializer}
    inputs = [{"name": v.name, "shape": shape_of(v), "dtype": "float32"} for v in proto.graph.input if v.name not in init_names]
    outputs = [{"name": v.name, "shape": shape_of(v), "dtype": "float32"} for v in proto.graph.output]
    ops = sorted({n.op_type for n in proto.graph.node})
    external = sorted({e.value for i in proto.graph.initializer for e in i.external_data if e.key == "location"})
    return {"opset": int(opset), "inputs": inputs, "outputs": outputs, "operators": ops, "nodes": len(proto.graph.node), "initializers": sorted(init_names), "externalFiles": external}


def check_output_folder(target: Path) -> None:
    """Refuse to replace ``target`` unless it is missing, an empty folder or an earlier export (manifest.json)."""
    if not target.exists() and not target.is_symlink():
        return
    if target.is_symlink() or not target.is_dir():
        raise ExportError("output path exists and is not a folder", kind="usage", where=str(target))
    entries = os.listdir(target)
    if entries and "manifest.json" not in entries:
        raise ExportError("output folder exists, is not empty and is not an llmed export; refusing to replace it", kind="usage", where=str(target), hint="choose another --out")


# ----------------------------------------------------------------------------------------------------
# the export
# ----------------------------------------------------------------------------------------------------


def export_run(
    run_dir: str | os.PathLike[str],
    tag: str = "best",
    out_dir: str | os.PathLike[str] | None = None,
    *,
    workspace_root: str | os.PathLike[str] | None = None,
    prepared_dir: str | os.PathLike[str] | None = None,
    opset: int | None = None,
    external_data: str = "auto",
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
    plugins: dict | None = None,
) -> dict:
    """Export run ``run_dir``'s checkpoint ``tag`` (module doc); returns the manifest written.

    ``external_data``: ``'auto'`` (only above ~1.8 GB of weights), ``'always'`` or ``'never'``.
    ``plugins``: the registered plugins (id -> python entry) the model is built from (required).
    """
    from .checkpoint import read_checkpoint_record
    from .data import PreparedDataset
    from .llm import merge_lora
    from .nn import resize_image, upsample_field, warp
    from .train import load_run_model

    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    started = time.time()
    run = Path(run_dir).resolve()
    if not run.is_dir():
        raise ExportError("run folder does not exist", kind="checkpoint", where=str(run))
    if tag not in ("best", "last"):
        raise ExportError(f"checkpoint tag must be 'best' or 'last', not {tag!r}", kind="usage")
    if external_data not in ("auto", "always", "never"):
        raise ExportError(f"external_data must be 'auto', 'always' or 'never', not {external_data!r}", kind="usage")
    if plugins is None:
        raise ExportError(
            "an export needs the registered plugins (plugins=..., id -> python entry); the paths in the run's spec.json are never imported from", kind="bridge", where=str(run / "spec.json")
        )
    config = _read_json(run / "config.json", "config.json of the run")
    spec = _read_json(run / "spec.json", "spec.json of the run")
    record = read_checkpoint_record(run / "checkpoints", tag)
    weights_file = run / "checkpoints" / str(record.get("tensors") or f"{tag}.safetensors")
    if not weights_file.is_file():
        raise ExportError(f"checkpoint '{tag}' names {weights_file.name}, which is missing", kind="checkpoint", where=str(weights_file))

    opset = int(opset or (config.get("export") or {}).get("opset") or MIN_OPSET)
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} cannot express the decoder's 5-D GridSample; use {MIN_OPSET} or later", kind="config", where=f"{run / 'config.json'} export.opset")
    ws = Path(workspace_root).resolve() if workspace_root else (Path(workspace_root_from_env()) if workspace_root_from_env() else find_workspace_root(run))
    experiment = str(config.get("name") or spec.get("experiment") or run.parent.name)
    if prepared_dir is None:
        recorded = record.get("preparedDir")
        candidates = [Path(recorded)] if recorded else []
        if ws is not None:
            candidates.append(ws / ".cache" / "prepared" / experiment)
        prepared_dir = next((c for c in candidates if (c / "pairs.json").is_file()), candidates[0] if candidates else None)
    if prepared_dir is None or not (Path(prepared_dir) / "pairs.json").is_file():
        raise ExportError(
            "the run's prepared dataset is not there; the export is checked on one of its pairs", kind="data", where=str(prepared_dir), hint=f"run `llmed data prepare {experiment}` first"
        )
    dataset = PreparedDataset(prepared_dir)
    if threads:
        torch.set_num_threads(int(threads))

    target = Path(out_dir).resolve() if out_dir else run / "export"
    check_output_folder(target)
    recover_folder(target)  # what a kill during an earlier export left beside the target
    staging = staging_folder(target)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        say(f"loading {run.name} checkpoint '{tag}' (step {record.get('step')})")
        model, record = load_run_model(run, tag, "cpu", workspace_root=str(ws) if ws else None, plugins=plugins)
        model = model.float().eval()
        merged = merge_lora(model)
        left = [name for name, _ in model.named_parameters() if "lora_" in name]
        if left:
            raise ExportError(f"LoRA parameters remain after merging: {left[0]} ...")
        predictor = FieldPredictor(model).eval()
        for p in predictor.parameters():
            p.requires_grad_(False)
        # Shared modules (an LLM layer applied twice) are counted once, as the graph stores them once.
        unique = {id(p): p for p in predictor.parameters()}
        n_params = sum(p.numel() for p in unique.values())
        weight_bytes = sum(p.numel() * p.element_size() for p in unique.values())
        use_external = external_data == "always" or (external_data == "auto" and weight_bytes > EXTERNAL_DATA_THRESHOLD_BYTES)

        net_ijk = [int(n) for n in spec["input"]["spatial"]]
        channels = int(spec["input"].get("channels", 1))
        prepared_ijk = [int(n) for n in dataset.shape_ijk]
        net_kji, prepared_kji = _kji(net_ijk), _kji(prepared_ijk)
        resized = tuple(net_kji) != tuple(prepared_kji)

        split, pair = _choose_parity_pair(dataset)
        batch = dataset.load_batch([pair], "cpu", labels="map")
        moving_full, fixed_full = batch["moving"], batch["fixed"]
        moving_net = resize_image(moving_full, net_kji) if resized else moving_full
        fixed_net = resize_image(fixed_full, net_kji) if resized else fixed_full
        if channels != moving_net.shape[1]:
            raise ExportError(f"the spec's input has {channels} channels, the prepared images have {moving_net.shape[1]}", kind="shape")

        # The torch reference is computed eagerly before tracing: export runs the modules on fake tensors.
        with torch.no_grad():
            t0 = time.time()
            torch_field_net = predictor(moving_net, fixed_net).float().clone()
            torch_ms = (time.time() - t0) * 1000

        model_path = staging / "model.onnx"
        say(
            f"exporting to ONNX (opset {opset}, fp32, {n_params:,} parameters, {weight_bytes / 2**20:.1f} MB"
            f"{', external data' if use_external else ''}{f', {merged} LoRA layers merged' if merged else ''})"
        )
        t0 = time.time()
        # torch.onnx prints its progress on stdout; stdout belongs to the --json result.
        _clear_warp_caches(predictor)
        try:
            with contextlib.redirect_stdout(sys.stderr), torch.no_grad():
                torch.onnx.export(
                    predictor,
                    (moving_net, fixed_net),
                    str(model_path),
                    input_names=list(INPUT_NAMES),
                    output_names=[OUTPUT_NAME],
                    opset_version=opset,
                    dynamo=True,
                    external_data=use_external,
                    optimize=True,
                    verbose=False,
                )
        finally:
            # Tracing filled the spatial transformers' identity-grid caches with traced tensors.
            _clear_warp_caches(predictor)
        export_s = time.time() - t0
        summary = _onnx_summary(model_path)
        if summary["opset"] < MIN_OPSET:
            raise ExportError(f"the exported graph declares opset {summary['opset']}, below {MIN_OPSET}")
        lora_tensors = [n for n in summary["initializers"] if "lora" in n.lower()]
        if lora_tensors:
            raise ExportError(f"the exported graph still holds LoRA tensors ({lora_tensors[0]} ...)")
        data_files = [staging / name for name in summary["externalFiles"]]
        if not use_external and data_files:
            raise ExportError(f"the exporter wrote external data ({data_files[0].name}) although none was asked for")
        expected_in = [1, channels, *net_kji]
        for spec_io, want in zip(summary["inputs"], (expected_in, expected_in)):
            if spec_io["shape"] != want:
                raise ExportError(f"exported input {spec_io['name']} has shape {spec_io['shape']}, expected {want}")
        if [i["name"] for i in summary["inputs"]] != list(INPUT_NAMES) or [o["name"] for o in summary["outputs"]] != [OUTPUT_NAME]:
            raise ExportError(
                f"exported graph has inputs {[i['name'] for i in summary['inputs']]} and outputs {[o['name'] for o in summary['outputs']]}, expected {list(INPUT_NAMES)} -> {OUTPUT_NAME}"
            )

        say(f"checking parity with onnxruntime on {split} pair {pair.moving} -> {pair.fixed}")
        parity = _parity(torch_field_net, torch_ms, model_path, moving_net, fixed_net, batch, dataset.labels, prepared_kji, resized, threads, split, pair, upsample_field, warp)
        if not parity["passed"]:
            raise ExportError(
                f"onnxruntime and torch disagree on {pair.moving} -> {pair.fixed}: max |field difference| "
                f"{parity['maxAbsFieldDiffVoxels']:.3g} voxels (limit {FIELD_TOLERANCE_VOXELS}), Dice "
                f"{parity['dice']['torch']} vs {parity['dice']['onnxruntime']}",
                hint="the export was not written; report this with the run folder",
            )

        data_cfg = config.get("data") or {}
        label_names = data_cfg.get("labelNames") or dataset.raw.get("labelNames") or {}
        files = {"model": {"file": model_path.name, "bytes": model_path.stat().st_size, "sha256": sha256_file(model_path)}}
        if data_files:
            data_file = data_files[0]
            files["externalData"] = {"file": data_file.name, "bytes": data_file.stat().st_size, "sha256": sha256_file(data_file)}
        factors = [((prepared_ijk[c] - 1) / (net_ijk[c] - 1)) if net_ijk[c] > 1 else prepared_ijk[c] / net_ijk[c] for c in range(3)]
        try:
            run_label = str(run.relative_to(ws)) if ws else str(run)
        except ValueError:
            run_label = str(run)
        manifest = {
            "format": EXPORT_FORMAT,
            "createdAt": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "experiment": experiment,
            "method": config.get("method"),
            "description": config.get("description"),
            "model": {
                **files["model"],
                "externalData": files.get("externalData"),
                "opset": summary["opset"],
                "dtype": "float32",
                "inputs": summary["inputs"],
                "outputs": summary["outputs"],
                "operators": summary["operators"],
                "nodes": summary["nodes"],
                "parameters": n_params,
                "loraLayersMerged": merged,
                "cascadeSteps": int(getattr(model, "active_steps", 1)),
                "producer": {"torch": torch.__version__, "onnx": _version("onnx"), "onnxscript": _version("onnxscript"), "onnxruntime": _version("onnxruntime")},
            },
            "input": {"shape": net_ijk, "channels": channels, "order": "NIfTI (i, j, k); tensors are (N, C, K, J, I)"},
            "prepared": {"shape": prepared_ijk, "title": dataset.title or data_cfg.get("title")},
            "data": {
                "title": data_cfg.get("title") or dataset.title,
                "modality": data_cfg.get("modality"),
                "preprocess": data_cfg.get("preprocess"),
                "labels": [int(v) for v in dataset.labels],
                "labelNames": label_names,
            },
            "resize": None
            if not resized
            else {
                "images": {"from": prepared_ijk, "to": net_ijk, "method": "trilinear, corner-aligned (align_corners=True), applied to both preprocessed images"},
                "field": {
                    "from": net_ijk,
                    "to": prepared_ijk,
                    "method": "trilinear, corner-aligned (align_corners=True); displacement along NIfTI axis c multiplied by (N_c - 1)/(n_c - 1)",
                    "scale": factors,
                },
            },
            "warp": {
                "field": "displacement u, channel c along NIfTI axis c, in voxels of the prepared (fixed) grid",
                "formula": "warped(p) = moving(p + u(p)), p a voxel index of the fixed grid",
                "alignCorners": True,
                "images": "trilinear",
                "labels": "nearest",
                "outside": "zeros",
                "grid": prepared_ijk,
            },
            "evaluate": config.get("evaluate"),
            "source": {
                "run": str(run),
                "runName": run_label,
                "checkpoint": tag,
                "step": int(record.get("step", 0)),
                "phase": int(record.get("phase", 1)),
                "best": record.get("best"),
                "weights": {"file": str(weights_file.relative_to(run)), "sha256": sha256_file(weights_file)},
                "baseWeights": record.get("baseWeights"),
                "preparedDir": str(Path(prepared_dir).resolve()),
                "workspace": str(ws) if ws else None,
            },
            "parity": parity,
            "exportSeconds": round(export_s, 2),
        }
        (staging / "manifest.json").write_text(dumps_manifest(manifest))
        target.parent.mkdir(parents=True, exist_ok=True)
        publish_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(
        f"export written to {target} in {time.time() - started:.1f} s; parity: max |field difference| "
        f"{parity['maxAbsFieldDiffVoxels']:.2e} voxels, Dice torch {parity['dice']['torch']} / onnxruntime {parity['dice']['onnxruntime']}"
    )
    return manifest


def _clear_warp_caches(module: nn.Module) -> None:
    """Empty the identity-grid caches of every spatial transformer (module-level ones included)."""
    from . import nn as llmed_nn

    for m in [*module.modules(), *llmed_nn._warpers.values()]:
        grids = getattr(m, "_grids", None)
        if isinstance(grids, dict):
            grids.clear()


def _parity(torch_field: torch.Tensor, torch_ms: float, model_path: Path, moving_net, fixed_net, batch, labels, prepared_kji, resized, threads, split, pair, upsample_field, warp) -> dict:
    """onnxruntime's field for the pair vs torch's (computed before export), at the prepared resolution."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    t0 = time.time()
    ort_field = torch.from_numpy(session.run([OUTPUT_NAME], {"moving": moving_net.numpy(), "fixed": fixed_net.numpy()})[0])
    ort_ms = (time.time() - t0) * 1000
    if resized:
        torch_field = upsample_field(torch_field, rescale=True, size=prepared_kji)
        ort_field = upsample_field(ort_field, rescale=True, size=prepared_kji)
    diff = (torch_field - ort_field).abs()
    max_diff, mean_diff = float(diff.max()), float(diff.mean())
    dice_torch = dice_ort = float("nan")
    n_labels = 0
    label_values = [v for v in labels if v != 0]
    if label_values and "moving_label_map" in batch:
        moving_labels = batch["moving_label_map"].float()
        warped_torch = warp(moving_labels, torch_field, mode="nearest").round().to(torch.int32)
        warped_ort = warp(moving_labels, ort_field, mode="nearest").round().to(torch.int32)
        dice_torch, n_labels = mean_dice(warped_torch, batch["fixed_label_map"], label_values)
        dice_ort, _ = mean_dice(warped_ort, batch["fixed_label_map"], label_values)
    dice_equal = (math.isnan(dice_torch) and math.isnan(dice_ort)) or round(dice_torch, DICE_DECIMALS) == round(dice_ort, DICE_DECIMALS)
    return {
        "pair": {"split": split, "moving": pair.moving, "fixed": pair.fixed, "movingLabels": pair.moving_labels, "fixedLabels": pair.fixed_labels},
        "maxAbsFieldDiffVoxels": max_diff,
        "meanAbsFieldDiffVoxels": mean_diff,
        "fieldGrid": [int(n) for n in reversed(prepared_kji)],
        "dice": {
            "torch": _finite(round(dice_torch, 6)) if not math.isnan(dice_torch) else None,
            "onnxruntime": _finite(round(dice_ort, 6)) if not math.isnan(dice_ort) else None,
            "labels": n_labels,
            "definition": "moving labels warped (nearest) by each field; mean over labels present in either map",
        },
        "torchMs": round(torch_ms, 1),
        "onnxruntimeMs": round(ort_ms, 1),
        "tolerance": {"fieldVoxels": FIELD_TOLERANCE_VOXELS, "diceDecimals": DICE_DECIMALS},
        "passed": bool(max_diff < FIELD_TOLERANCE_VOXELS and dice_equal),
    }


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:
        return None


def dumps_manifest(manifest: dict) -> str:
    """Indented JSON with lists of plain numbers kept on one line (shapes, label lists stay readable)."""
    import re

    text = json.dumps(json_safe(manifest), indent=2)
    return re.sub(r"\[\s*(-?[\d.eE+-]+(?:,\s*-?[\d.eE+-]+)*)\s*\]", lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


# ----------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from .quiet import quiet_libraries

    quiet_libraries()
    ap = argparse.ArgumentParser(prog="python -m llmed.export", description="export a run's field predictor as ONNX + manifest.json")
    ap.add_argument("run_dir", help="run folder (runs/<experiment>/<timestamp>)")
    ap.add_argument("--tag", default="best", choices=["best", "last"], help="checkpoint to export (default best)")
    ap.add_argument("--out", default=None, help="output folder (default <run>/export)")
    ap.add_argument("--workspace", default=None, help="workspace root (resolves relative LLM checkpoint folders)")
    ap.add_argument("--prepared", default=None, help="prepared dataset folder (default: the one the run trained on)")
    ap.add_argument("--opset", type=int, default=None, help=f"ONNX opset (default: the config's export.opset, else {MIN_OPSET})")
    ap.add_argument("--external-data", default="auto", choices=["auto", "always", "never"])
    ap.add_argument("--threads", type=int, default=None, help="torch / onnxruntime threads")
    ap.add_argument("--plugins", required=True, help="JSON file: the registered plugins, id -> {root, module, factory} (what `llmed export` passes)")
    ap.add_argument("--json", action="store_true", help="print one JSON result line on stdout (for the llmed CLI)")
    args = ap.parse_args(argv)
    try:
        plugins = _read_json(Path(args.plugins), "plugin table", kind="usage")
        manifest = export_run(
            args.run_dir, args.tag, args.out, workspace_root=args.workspace, prepared_dir=args.prepared, opset=args.opset, external_data=args.external_data, threads=args.threads, plugins=plugins
        )
    except Exception as err:
        kind = getattr(err, "kind", None)
        kind = kind if isinstance(kind, str) else "bridge"
        message = str(err) or type(err).__name__
        if kind == "bridge" and not isinstance(err, ExportError):
            message = f"{type(err).__name__}: {message}"
        result = {
            "ok": False,
            "kind": kind,
            "message": message,
            "where": getattr(err, "where", None) or getattr(err, "path", None),
            "hint": getattr(err, "hint", None),
            "traceback": traceback.format_exc(),
        }
        if args.json:
            print(json.dumps(json_safe(result)), flush=True)
        else:
            print(f"error[{kind}]{' ' + str(result['where']) + ':' if result['where'] else ''} {message}", file=sys.stderr)
            if result["hint"]:
                print(f"  hint: {result['hint']}", file=sys.stderr)
        return 1
    out = Path(args.out).resolve() if args.out else Path(args.run_dir).resolve() / "export"
    if args.json:
        print(json.dumps(json_safe({"ok": True, "exportDir": str(out), "manifest": manifest})), flush=True)
    else:
        p = manifest["parity"]
        print(
            f"{out}: model.onnx ({manifest['model']['bytes'] / 2**20:.1f} MB, opset {manifest['model']['opset']}); "
            f"parity max |field diff| {p['maxAbsFieldDiffVoxels']:.2e} voxels, Dice torch {p['dice']['torch']} / "
            f"onnxruntime {p['dice']['onnxruntime']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
