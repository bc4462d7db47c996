"""CPU training-step variants for issue #15 item 2 (a benchmark, not a test): one composed registration model's
training step (forward, the configured losses, backward, Adam) timed under

* ``stock``        — PyTorch's own conv3d choice (batch-1 3-D convolutions mostly run ``aten::slow_conv3d``);
* ``onednn``       — every Conv3d forward and stride-1 backward on oneDNN (``llmed.nn.use_onednn_conv3d``,
                     what the trainer does; the **reference** of every ratio);
* ``channels-last``— ``onednn`` with model and inputs in ``torch.channels_last_3d``;
* ``stock-channels-last`` — the stock path with channels-last-3d (PyTorch then picks oneDNN more often);
* ``compile``      — ``torch.compile`` (inductor, CPU) of the model on the stock path (the custom autograd
                     function is not traceable by dynamo without a graph break per convolution);
* ``bf16``         — the stock path under ``torch.autocast("cpu", torch.bfloat16)`` (bf16 convolutions go to
                     oneDNN by PyTorch's own rule; pays off only on CPUs with AMX-BF16 / AVX512-BF16);
* each of the above at the thread counts given.

Variants run interleaved, round-robin, ``--rounds`` times, each round ``--steps`` timed steps after ``--warmup``
untimed ones, so load drift hits all alike; the median step time per variant and its ratio to ``onednn`` at the
same thread count are written. Same data (the prepared pairs of the experiment), same seed, fresh model per round.

    npx llmed config check demo --json > /tmp/demo.json
    PYTHONPATH=bridge/python .venv/bin/python bench/training/step_variants.py /tmp/demo.json .cache/prepared/demo \\
        [--threads 1,2] [--variants stock,onednn,channels-last,stock-channels-last,compile] [--rounds 3] [--steps 10] \\
        [--out bench/results/training-step-variants.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from llmed.assemble import build_loss, build_model
from llmed.atomic import atomic_write_text
from llmed.data import PairSampler, PreparedDataset
from llmed.nn import cpu_has_bf16, use_onednn_conv3d
from llmed.train import seed_everything

VARIANTS = ("stock", "onednn", "channels-last", "stock-channels-last", "compile", "bf16")


def make_step(spec: dict, variant: str):
    """A fresh model, loss and optimiser for ``variant``; returns ``step(batch) -> loss``."""
    use_onednn_conv3d(variant in ("onednn", "channels-last"))
    seed_everything(0)
    model, loss_fn = build_model(spec), build_loss(spec)
    channels_last = variant in ("channels-last", "stock-channels-last")
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    forward = torch.compile(model) if variant == "compile" else model
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def step(b: dict) -> float:
        moving, fixed = b["moving"], b["fixed"]
        if channels_last:
            moving, fixed = moving.contiguous(memory_format=torch.channels_last_3d), fixed.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
            total, _ = loss_fn(forward(moving, fixed), {"moving": moving, "fixed": fixed})
        opt.zero_grad()
        total.backward()
        opt.step()
        return float(total.detach())

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec")
    ap.add_argument("prepared")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    variants = [v for v in a.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    threads = [int(t) for t in a.threads.split(",")]
    spec = json.load(open(a.spec))
    data = PreparedDataset(a.prepared)
    train = data.splits["train"]
    sampler = PairSampler(len(train), 0)
    batches = [data.load_batch([train[sampler.batch(k, 1)[0]]], "cpu", labels="none") for k in range(a.warmup + a.steps)]
    times: dict[str, list[float]] = {}
    losses: dict[str, list[float]] = {}
    compile_s: dict[str, list[float]] = {}
    for r in range(a.rounds):
        for t in threads:
            torch.set_num_threads(t)
            for v in variants:
                key = f"{v}@{t}"
                step = make_step(spec, v)
                t0 = time.perf_counter()
                for b in batches[: a.warmup]:
                    step(b)
                warm = time.perf_counter() - t0
                if v == "compile":
                    compile_s.setdefault(key, []).append(warm)
                per = []
                for b in batches[a.warmup :]:
                    t1 = time.perf_counter()
                    loss = step(b)
                    per.append(time.perf_counter() - t1)
                times.setdefault(key, []).extend(per)
                losses.setdefault(key, []).append(loss)
                print(json.dumps({"round": r, "variant": v, "threads": t, "median_step_s": statistics.median(per), "last_loss": loss}), flush=True)
    rows = []
    for t in threads:
        ref = statistics.median(times[f"onednn@{t}"]) if f"onednn@{t}" in times else None
        for v in variants:
            med = statistics.median(times[f"{v}@{t}"])
            rows.append(
                {
                    "variant": v,
                    "threads": t,
                    "median_step_s": med,
                    "vs_onednn": None if ref is None else ref / med,
                    "last_losses": losses[f"{v}@{t}"],
                    "compile_and_warmup_s": compile_s.get(f"{v}@{t}"),
                }
            )
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "load_average_at_end": os.getloadavg(),
        "torch": torch.__version__,
        "experiment": spec.get("experiment"),
        "input": spec["input"]["spatial"],
        "rounds": a.rounds,
        "steps_per_round": a.steps,
        "rows": rows,
        "note": "vs_onednn = median step time of onednn at the same thread count / this variant's (> 1: faster than the trainer's path).",
    }
    text = json.dumps(result, indent=2) + "\n"
    if a.out:
        atomic_write_text(a.out, text)
        atomic_write_text(a.out.removesuffix(".json") + ".md", markdown(result))
    print(text)


def machine() -> str:
    """Cores, CPU model and whether it has bf16 arithmetic (what the ``bf16`` variant's ratio depends on)."""
    model = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {model}, bf16 arithmetic {'yes' if cpu_has_bf16() else 'no'}"


def markdown(result: dict) -> str:
    """The table of ``result`` (what ``--out`` writes beside the JSON as .md)."""
    lines = [
        f"# CPU training step: kernel, layout, threads and torch.compile ({result['experiment']}, {'×'.join(map(str, result['input']))}, {result['date']})",
        "",
        f"`bench/training/step_variants.py`: one training step (forward, losses, backward, Adam) of the composed model on "
        f"its prepared pairs; {result['rounds']} interleaved rounds × {result['steps_per_round']} timed steps per variant, "
        f"median; {result['machine']}, torch {result['torch']}, load average at the end {', '.join(f'{x:.2f}' for x in result['load_average_at_end'])}. "
        "Ratio = the trainer's path (`onednn`) at the same thread count / the variant (> 1: faster than the trainer).",
        "",
        "| variant | threads | median step (s) | vs onednn | compile + warm-up (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        comp = ", ".join(f"{x:.1f}" for x in r["compile_and_warmup_s"]) if r["compile_and_warmup_s"] else ""
        ratio = "" if r["vs_onednn"] is None else f"{r['vs_onednn']:.2f}×"
        lines.append(f"| {r['variant']} | {r['threads']} | {r['median_step_s']:.3f} | {ratio} | {comp} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
