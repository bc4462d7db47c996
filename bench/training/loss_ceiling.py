"""What endpoint error does the training loss itself allow? (issue #15, fifth round)

A network trained on a loss can at best reach the field that minimises that loss on each pair. This script finds
that field directly, per pair, with no network: free fields at the decoder's scales (1/8 … full), summed coarse to
fine exactly as the multiscale decoder sums its residuals (``fields[k] = up(fields[k-1]) + r_k``), optimised by Adam
on the experiment's own loss (warp, resize, smoothing, regulariser and scale weights from the composed spec), and
logs the endpoint error against the true field inside the fixed labels, in voxels of the training grid. If the
loss's own minimiser does not reach a bar, no amount of training will; if it does, the network is what is slow.

    PYTHONPATH=bridge/python .venv/bin/python bench/training/loss_ceiling.py <spec.json> <prepared dir> \\
        [--split val,test] [--iterations 400] [--lr 0.02] [--every 50] [--sigma S] [--diffusion W] [--out rows.jsonl]

``--sigma`` / ``--diffusion`` override the ``mse`` loss's smoothing and the ``diffusion`` loss's weight, to see
which setting of the loss allows what.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from llmed.assemble import build_loss, build_model
from llmed.data import PreparedDataset
from llmed.nn import upsample_field, warp
from llmed.train import seed_everything


def override_loss(spec: dict, sigma: float | None, diffusion: float | None) -> dict:
    spec = copy.deepcopy(spec)
    for term in spec["losses"]:
        if sigma is not None and term["id"] == "mse":
            term.setdefault("options", {})["smoothing"] = sigma
        if diffusion is not None and term["id"] == "diffusion":
            term["weight"] = diffusion
    return spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec")
    ap.add_argument("prepared")
    ap.add_argument("--split", default="val,test")
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--lr", type=float, default=0.02, help="Adam step on the field values (voxels)")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sigma", type=float, default=None)
    ap.add_argument("--diffusion", type=float, default=None)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    spec = override_loss(json.load(open(a.spec)), a.sigma, a.diffusion)
    data = PreparedDataset(a.prepared)
    seed_everything(0)
    model, loss_fn = build_model(spec), build_loss(spec)
    pairs = [p for split in a.split.split(",") for p in data.splits.get(split, [])]
    out = open(a.out, "w") if a.out else None
    for pair in pairs:
        for row in ceiling_rows(model, loss_fn, data, pair, a.iterations, a.lr, a.every):
            print(json.dumps(row), flush=True)
            if out:
                out.write(json.dumps(row) + "\n")
                out.flush()


def coarse_to_fine(residuals: list[torch.Tensor]) -> list[torch.Tensor]:
    """The multiscale decoder's sum: ``fields[k] = up(fields[k-1]) + residuals[k]`` (coarse → fine)."""
    fields: list[torch.Tensor] = []
    for r in residuals:
        fields.append(r if not fields else upsample_field(fields[-1], True, size=r.shape[2:]) + r)
    return fields


def endpoint_error(field: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean ‖u − u*‖ in voxels of the truth's grid, over ``mask`` (the fixed labels' foreground)."""
    if field.shape[2:] != truth.shape[2:]:
        field = upsample_field(field, True, size=truth.shape[2:])
    return float((field - truth).norm(dim=1)[mask].mean())


def ceiling_rows(model, loss_fn, data: PreparedDataset, pair, iterations: int, lr: float, every: int):
    """Optimise free residual fields at the model's field grids on one pair; yield a row every ``every`` steps."""
    b = data.load_batch([pair], "cpu", labels="map")
    with torch.no_grad():
        sizes = [tuple(f.shape[2:]) for f in model(b["moving"], b["fixed"])["fields"]]
    truth = data.true_field(pair)
    mask = (b["fixed_label_map"] > 0)[:, 0]
    residuals = [torch.zeros(1, 3, *s, requires_grad=True) for s in sizes]
    opt = torch.optim.Adam(residuals, lr=lr)
    identity = endpoint_error(torch.zeros_like(truth), truth, mask)
    t0 = time.time()
    for it in range(iterations + 1):
        fs = coarse_to_fine(residuals)
        total, _ = loss_fn({"fields": fs, "warped": [warp(b["moving"], f) for f in fs]}, {"moving": b["moving"], "fixed": b["fixed"]})
        if it % every == 0 or it == iterations:
            with torch.no_grad():
                yield {
                    "pair": pair.fixed if hasattr(pair, "fixed") else str(pair),
                    "iteration": it,
                    "loss": float(total),
                    "epe": endpoint_error(fs[-1].detach(), truth, mask),
                    "identityEpe": identity,
                    "magnitude": float(fs[-1].detach().norm(dim=1)[mask].mean()),
                    "truthMagnitude": float(truth.norm(dim=1)[mask].mean()),
                    "seconds": round(time.time() - t0, 1),
                }
        if it == iterations:
            break
        opt.zero_grad()
        total.backward()
        opt.step()


if __name__ == "__main__":
    main()
