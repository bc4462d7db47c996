"""Learning probe for issue #15: train a composed registration model on prepared pairs with a plain loop (the
trainer's modules, loss, warp and pair order; no checkpoints, no export) and log, every ``--every`` steps, the
mean training loss, the endpoint error and the cosine to the true field on 4 training pairs and on the
validation pairs, and the mean predicted field magnitude — all in voxels, inside the fixed labels (or the
fixed image > 0.1 without labels). It answers "does the field follow the truth, and how fast" in one number per
row, which Dice under nearest-neighbour labels cannot at sub-voxel fields (bench/results/learning-diagnosis.md).

    PYTHONPATH=bridge/python .venv/bin/python bench/training/probe_learning.py <spec.json> <prepared dir> \\
        [--steps 300] [--lr 1e-3] [--every 50] [--threads 1] [--seed 0] [--stage-scale K] [--field-scale 2] [--warmup N --decay] [--swap P]
        [--warp-p Q --warp-max A --warp-spacing S] [--out rows.jsonl]

``spec.json`` is the composed ModelSpec (``llmed config check <experiment> --json``); edit its loss or plugin
options to probe a variant. ``--stage-scale K`` multiplies every stage-adapter map by K (0: the token / LLM path
removed from the decoder), the experiment behind the stage plugin's ``silentStart``. ``--field-scale 2`` replaces the
finest field by the next-coarser one upsampled ×2 (the full-resolution residual is computed and ignored): the
experiment behind a decoder that predicts its finest field at half resolution. ``--warmup N`` raises the lr linearly
over the first N steps, ``--decay`` then lowers it by a cosine to 0 at ``--steps`` (``llmed.train.lr_at``, the
trainer's own ``train.warmup`` / ``train.lrSchedule: cosine`` curve).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from llmed.assemble import build_loss, build_model
from llmed.augment import PairAugmentation
from llmed.data import PairSampler, PreparedDataset
from llmed.nn import upsample_field, use_onednn_conv3d, warp
from llmed.train import lr_at, seed_everything


def field_agreement(model, data: PreparedDataset, pairs) -> dict:
    """Mean over ``pairs`` of EPE (voxels), cosine to the true field and predicted magnitude, inside the mask."""
    model.eval()
    epe, cos, mag = [], [], []
    with torch.no_grad():
        for p in pairs:
            b = data.load_batch([p], "cpu", labels="map")
            field = model(b["moving"], b["fixed"])["fields"][-1]
            truth = data.true_field(p)
            if field.shape[2:] != truth.shape[2:]:
                field = upsample_field(field, True, size=truth.shape[2:])
            mask = ((b["fixed_label_map"] > 0) if "fixed_label_map" in b else (b["fixed"] > 0.1))[:, 0]
            epe.append(float((field - truth).norm(dim=1)[mask].mean()))
            cos.append(float((field * truth).sum(1)[mask].sum() / (field.norm(dim=1)[mask] * truth.norm(dim=1)[mask]).sum().clamp_min(1e-12)))
            mag.append(float(field.norm(dim=1)[mask].mean()))
    model.train()
    n = len(pairs)
    return {"epe": sum(epe) / n, "cos": sum(cos) / n, "magnitude": sum(mag) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec")
    ap.add_argument("prepared")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stage-scale", type=float, default=None)
    ap.add_argument("--field-scale", type=int, default=1, choices=[1, 2])
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--decay", action="store_true")
    ap.add_argument("--swap", type=float, default=0.0, help="train.augment.swap")
    ap.add_argument("--warp-p", type=float, default=0.0, help="train.augment.warpFixed.probability")
    ap.add_argument("--warp-max", type=float, default=0.0, help="train.augment.warpFixed.maxDisplacement (voxels)")
    ap.add_argument("--warp-spacing", type=float, default=8.0, help="train.augment.warpFixed.spacing (voxels)")
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    use_onednn_conv3d(True)  # the trainer's CPU convolution path (its step time, the same arithmetic)
    spec = json.load(open(a.spec))
    data = PreparedDataset(a.prepared)
    seed_everything(a.seed)
    model, loss_fn = build_model(spec), build_loss(spec)
    if a.stage_scale is not None:
        for m in model.modules():
            if type(m).__name__ == "StageAdapters":
                forward = m.forward
                m.forward = lambda tokens, forward=forward: [x * a.stage_scale for x in forward(tokens)]
    if a.field_scale == 2:
        forward_all = model.forward

        def forward_half(moving, fixed, forward_all=forward_all):
            out = forward_all(moving, fixed)
            field = upsample_field(out["fields"][-2], True, size=out["fields"][-1].shape[2:])
            out["fields"][-1], out["warped"][-1] = field, warp(moving, field)
            return out

        model.forward = forward_half
    augment = PairAugmentation({"swap": a.swap, "warpFixed": {"probability": a.warp_p, "maxDisplacement": a.warp_max, "spacing": a.warp_spacing}}, a.seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=a.lr)

    schedule = "cosine" if a.decay else "constant"  # the trainer's own curve (train.lrSchedule, train.warmup)
    train, val = data.splits["train"], data.splits["val"]
    sampler = PairSampler(len(train), a.seed)
    out = open(a.out, "w") if a.out else None
    t0, losses = time.time(), []

    def log(step: int) -> None:
        tr, va = field_agreement(model, data, train[:4]), field_agreement(model, data, val)
        row = {"step": step, "loss": sum(losses) / len(losses) if losses else None, "train": tr, "val": va, "seconds": round(time.time() - t0, 1)}
        print(json.dumps(row), flush=True)
        if out:
            out.write(json.dumps(row) + "\n")
            out.flush()

    log(0)
    for step in range(1, a.steps + 1):
        b = augment(data.load_batch([train[sampler.batch(step - 1, 1)[0]]], "cpu", labels="none"), [step - 1])
        total, _ = loss_fn(model(b["moving"], b["fixed"]), {"moving": b["moving"], "fixed": b["fixed"]})
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, a.steps, a.lr, a.warmup / a.steps, schedule)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
        if step % a.every == 0:
            log(step)
            losses = []


if __name__ == "__main__":
    main()
