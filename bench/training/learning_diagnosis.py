"""Why the registration models' first few hundred CPU steps did nothing: the checks behind
bench/results/learning-diagnosis.md, on a prepared experiment (no training; about a minute on 2 cores).

    PYTHONPATH=bridge/python .venv/bin/python bench/training/learning_diagnosis.py <spec.json> <prepared dir> [out.json]

``spec.json`` is the composed ModelSpec (``llmed config check <experiment> --json``). Prints and writes JSON:

* ``oracle``: loss terms and nearest-neighbour Dice of the first validation pair under its true field
  (through the same warp, resize and loss as training), its negation, and identity — the sign and axis
  convention check: the true field must give the smallest loss;
* ``spread``: per convolution, the spatial standard deviation of its output (mean over channels) at init,
  under ``init='pytorch'`` and ``init='he'`` — how much of the input still varies across the volume;
* ``field``: mean and spatial spread of the untrained final field under both inits;
* ``gradients``: gradient norm per parameter tensor at step 0 (``init='he'``);
* ``offset``: MSE over training pairs when every voxel is shifted by a constant (0, 0.15, 0.3 voxel per
  axis), plain and with a σ = 0.5 or 1 voxel Gaussian on both images, and under the true fields — how much a
  field that does not depend on the images can lower the loss (the blur shortcut).
"""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path

import torch

from llmed.assemble import build_loss, build_model
from llmed.data import PreparedDataset
from llmed.nn import upsample_field, warp
from llmed.train import dice_per_label, seed_everything

# The Gaussian is the mse plugin's (plugins/mse/python), where the loss that uses it lives.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "mse" / "python"))
from llmed_mse import gaussian_smooth  # noqa: E402


def with_init(spec: dict, init: str) -> dict:
    spec = copy.deepcopy(spec)
    for node in (spec["encoder"], spec["stageAdapters"], spec["decoder"]):
        node.setdefault("options", {})["init"] = init
    return spec


def fields_at_scales(field: torch.Tensor, sizes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    """The full-resolution true field resampled onto each scale's grid, in that grid's voxels."""
    return [upsample_field(field, rescale=True, size=s) for s in sizes]


def main() -> None:
    spec_path, prepared_dir = sys.argv[1], sys.argv[2]
    out_path = sys.argv[3] if len(sys.argv) > 3 else None
    torch.set_num_threads(max(1, torch.get_num_threads()))
    spec = json.load(open(spec_path))
    data = PreparedDataset(prepared_dir)
    labels = [v for v in data.labels if v != 0]
    report: dict = {"spec": spec_path, "prepared": prepared_dir}

    # ---- oracle: the true field through the same warp and loss
    seed_everything(0)
    model = build_model(spec)
    loss_fn = build_loss(spec)
    val = data.splits["val"][0]
    batch = data.load_batch([val], "cpu", labels="map")
    with torch.no_grad():
        sizes = [tuple(f.shape[2:]) for f in model(batch["moving"], batch["fixed"])["fields"]]
    truth = data.true_field(val)
    cases = {"identity": [torch.zeros(1, 3, *s) for s in sizes]}
    if truth is not None:
        true_fields = fields_at_scales(truth, sizes)
        cases["true field"] = true_fields
        cases["negated true field"] = [-f for f in true_fields]
    oracle = {}
    for name, fields in cases.items():
        out = {"fields": fields, "warped": [warp(batch["moving"], f) for f in fields]}
        _, terms = loss_fn(out, {"moving": batch["moving"], "fixed": batch["fixed"]})
        row = {"loss": terms}
        if labels and "moving_label_map" in batch:
            warped = warp(batch["moving_label_map"].float(), fields[-1], mode="nearest").round().to(torch.int32)
            scores = [s for s in dice_per_label(warped, batch["fixed_label_map"], labels) if not math.isnan(s)]
            row["dice"] = sum(scores) / len(scores)
        if truth is not None:
            row["fieldMeanVoxels"] = float(fields[-1].norm(dim=1).mean())
        oracle[name] = row
    report["oracle"] = oracle

    # ---- signal spread through the network at init, and the untrained field
    train_batch = data.load_batch([data.splits["train"][0]], "cpu", labels="none")
    report["spread"], report["field"] = {}, {}
    for init in ("pytorch", "he"):
        seed_everything(0)
        net = build_model(with_init(spec, init))
        rows: list[dict] = []
        hooks = []
        for name, module in net.named_modules():
            if isinstance(module, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
                hooks.append(
                    module.register_forward_hook(
                        lambda m, i, o, name=name, rows=rows: rows.append(
                            {"layer": name, "channels": int(o.shape[1]), "spatialStd": float(o.std(dim=(2, 3, 4)).mean()), "absMean": float(o.mean(dim=(2, 3, 4)).abs().mean())}
                        )
                    )
                )
        with torch.no_grad():
            fields = net(train_batch["moving"], train_batch["fixed"])["fields"]
        for h in hooks:
            h.remove()
        report["spread"][init] = rows
        final = fields[-1]
        report["field"][init] = {"meanMagnitudeVoxels": float(final.norm(dim=1).mean()), "spatialStdVoxels": float(final.std(dim=(2, 3, 4)).mean())}
        if init == "he":
            net.train()
            out = net(train_batch["moving"], train_batch["fixed"])
            total, _ = build_loss(spec)(out, {"moving": train_batch["moving"], "fixed": train_batch["fixed"]})
            total.backward()
            report["gradients"] = {n: float(p.grad.norm()) for n, p in net.named_parameters() if p.grad is not None}

    # ---- what a constant offset does to the loss (the blur shortcut)
    pairs = data.splits["train"][:8]
    batches = [data.load_batch([p], "cpu", labels="none") for p in pairs]
    truths = [data.true_field(p) for p in pairs]
    offset: dict = {}
    for sigma in (0.0, 0.5, 1.0):
        row = {}
        for shift in (0.0, 0.15, 0.3):
            values = []
            for b in batches:
                field = torch.full((1, 3, *b["moving"].shape[2:]), shift)
                values.append(float(torch.mean((gaussian_smooth(warp(b["moving"], field), sigma) - gaussian_smooth(b["fixed"], sigma)) ** 2)))
            row[f"{shift:g}"] = sum(values) / len(values)
        if all(t is not None for t in truths):
            row["true field"] = sum(float(torch.mean((gaussian_smooth(warp(b["moving"], t), sigma) - gaussian_smooth(b["fixed"], sigma)) ** 2)) for b, t in zip(batches, truths)) / len(batches)
        offset[f"sigma {sigma:g}"] = row
    report["offset"] = offset
    sharp = lambda x: sum(float(torch.mean(torch.diff(x, dim=d) ** 2)) for d in (2, 3, 4))  # noqa: E731
    report["sharpness"] = {"moving": sum(sharp(b["moving"]) for b in batches) / len(batches), "fixed": sum(sharp(b["fixed"]) for b in batches) / len(batches)}
    text = json.dumps(report, indent=1)
    if out_path:
        with open(out_path, "w") as f:
            f.write(text + "\n")
    print(json.dumps({k: report[k] for k in ("oracle", "field", "offset", "sharpness")}, indent=1))


if __name__ == "__main__":
    main()
