"""A tiny trained-and-exported run for the TypeScript runtime tests (real training, real export).

    cd bridge/python && python -m tests.tiny_export <out_dir>

writes ``<out_dir>/prepared`` (toy blobs with labels, 16³), ``<out_dir>/ckpt`` (a tiny LLaMA checkpoint),
``<out_dir>/run`` (2 training steps of LLaMA-Reg on them) and ``<out_dir>/run/export`` (ONNX + manifest),
plus ``<out_dir>/reference.json`` and ``reference_field.f32``: torch's own field for the first test pair
(component-major, i fastest — the TypeScript layout) and the Dice of the moving labels warped by it, so
the TypeScript side can check onnxruntime-node + its own warp against torch. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

# The test modules import each other as top-level modules (pytest puts tests/ on sys.path); do the same.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_export import CHANNELS, SPATIAL, run_config  # noqa: E402
from test_train_engine import make_prepared  # noqa: E402

from fixtures import build_tiny_checkpoint, make_spec, registered_plugins  # noqa: E402
from llmed.data import PreparedDataset
from llmed.export import export_run, mean_dice
from llmed.nn import warp
from llmed.train import Trainer, load_run_model

PLUGINS_DIR = Path(__file__).resolve().parents[3] / "plugins"
PLUGINS = registered_plugins(PLUGINS_DIR)


def build(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    prepared = make_prepared(out / "prepared", shape_ijk=SPATIAL)
    ckpt = build_tiny_checkpoint("llama", out / "ckpt", hidden=64, layers=2)
    spec = make_spec(PLUGINS_DIR, ckpt["dir"], spatial=SPATIAL, channels=CHANNELS, base=16)
    run = out / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(run_config(2)))
    (run / "spec.json").write_text(json.dumps(spec))
    status = Trainer(run, spec, run_config(2), prepared, {"device": "cpu", "valPairs": 1}).run()
    if status["state"] != "done":
        raise SystemExit(f"training failed: {status.get('message')}\n{status.get('traceback')}")
    manifest = export_run(run, "best", workspace_root=out, plugins=PLUGINS, log=lambda _m: None)

    data = PreparedDataset(prepared)
    pair = data.splits["test"][0]
    batch = data.load_batch([pair], labels="map")
    model, _ = load_run_model(run, "best", plugins=PLUGINS, workspace_root=str(out))
    with torch.no_grad():
        field = model.forward_field(batch["moving"], batch["fixed"]).float()
    warped = warp(batch["moving_label_map"].float(), field, mode="nearest").round().to(torch.int32)
    dice, _ = mean_dice(warped, batch["fixed_label_map"], [1, 2])
    field[0].contiguous().numpy().astype("<f4").tofile(out / "reference_field.f32")
    ref = {
        "pair": {"moving": pair.moving, "fixed": pair.fixed, "movingLabels": pair.moving_labels, "fixedLabels": pair.fixed_labels},
        "dice": dice,
        "fieldFile": "reference_field.f32",
        "shape": list(SPATIAL),
    }
    (out / "reference.json").write_text(json.dumps(ref))
    return {"prepared": str(prepared), "run": str(run), "export": str(run / "export"), "reference": ref, "parity": manifest["parity"]["maxAbsFieldDiffVoxels"]}


if __name__ == "__main__":
    print(json.dumps(build(Path(sys.argv[1]).resolve())))
