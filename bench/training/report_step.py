"""CPU time of one report-generation training step (issue #15's demo budget; a benchmark, not a test).

    npx llmed config check report-demo --json > /tmp/report-demo.json
    PYTHONPATH=bridge/python .venv/bin/python bench/training/report_step.py /tmp/report-demo.json runs/report-demo/<stamp>/config.json \\
        .cache/prepared/report-demo [--rounds 3] [--steps 8] [--threads 2] [--out bench/results/training-report-step.json]

The trainer (llmed.report.ReportTrainer, cached frozen-encoder features, the LoRA stage, bf16 autocast where
the CPU has it) is built once per variant; variants run interleaved, round-robin, so load drift falls on all
alike; each round times ``--steps`` consecutive steps on the same draws (the sampler is seeded) after one
untimed step. Variants:

* ``all-logits``     — the LM head and its log-softmax at every position (what the trainer did before);
* ``answer-logits``  — only at the positions that predict an answer token (what it does now);
* each at the LoRA dropouts of ``--dropouts`` (default 0.05, M3D's, and 0, report-demo's): on a CPU every
  LoRA projection draws its own Bernoulli mask, which is slow.

Writes the median step time per variant and its ratio to the first (``all-logits``, first dropout).
The config is a run folder's config.json (the schema-filled one); the prepared folder must hold the features
cache (``llmed train report-demo`` once makes both).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from llmed.atomic import atomic_write_text
from llmed.report import ReportModel, ReportTrainer


def build(spec: dict, config: dict, prepared: str, variant: str, dropout: float) -> ReportTrainer:
    spec = copy.deepcopy(spec)
    spec["llm"]["options"]["lora"]["dropout"] = dropout
    t = ReportTrainer(tempfile.mkdtemp(prefix="report-step-"), spec, config, prepared, {"workspaceRoot": str(Path.cwd()), "device": "cpu"})
    t._setup()
    t._precompute_features()
    t._fit_projector()
    t._enter_stage(len(t.stages) - 1, resuming=False)
    if variant.startswith("all-logits"):
        forward = ReportModel.forward
        t.model.forward = lambda batch, all_logits=False, m=t.model: forward(m, batch, all_logits=True)
    return t


def markdown(result: dict) -> str:
    lines = [
        "# Report-generation training step on a CPU (issue #15, the demo's budget)",
        "",
        f"{result['machine']}, torch {result['torch']}, {result['threads']} threads, {result['date']}; experiment {result['experiment']} "
        f"(batch {result['batchSize']}, autocast {result['amp']}, the LoRA stage, cached frozen-encoder features). "
        f"{result['rounds']} interleaved rounds × {result['stepsPerRound']} steps per variant; median step time; ratio to the first row. "
        f"Load average at the end {', '.join(f'{x:.2f}' for x in result['loadAverageAtEnd'])}.",
        "",
        "| variant | median step (s) | × first row | steps |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {r['variant']} | {r['medianStepS']} | {r['overReference']} | {r['steps']} |" for r in result["rows"]]
    lines += [
        "",
        "*all-logits*: the LM head and its log-softmax at every position (the trainer before this change); *answer-logits*: only at "
        "the positions that predict an answer token (now; the same loss and gradients, bridge/python/tests/test_report_model.py). "
        "LoRA dropout draws one Bernoulli mask per projection per step, slow on a CPU; report-demo trains without it.",
        "",
        "Reproduce: see the docstring of `bench/training/report_step.py`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("config")
    ap.add_argument("prepared")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dropouts", default="0.05,0")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = json.loads(Path(args.spec).read_text())
    config = json.loads(Path(args.config).read_text())
    dropouts = [float(d) for d in args.dropouts.split(",")]
    variants = [f"{logits} dropout {d:g}" for d in dropouts for logits in ("all-logits", "answer-logits")]
    trainers = {v: build(spec, config, args.prepared, v, float(v.rsplit(" ", 1)[1])) for v in variants}
    times: dict[str, list[float]] = {v: [] for v in variants}
    losses: dict[str, list[float]] = {v: [] for v in variants}
    start = trainers[variants[0]].stage_bounds[-1][1]
    for r in range(args.rounds):
        for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
            t = trainers[v]
            t._train_step(start + 1)  # untimed
            for s in range(args.steps):
                t0 = time.perf_counter()
                loss, _ = t._train_step(start + 2 + s)
                times[v].append(time.perf_counter() - t0)
                losses[v].append(loss)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{v} {statistics.median(times[v]):.3f} s" for v in variants), flush=True)
    ref = statistics.median(times[variants[0]])
    rows = [{"variant": v, "medianStepS": round(statistics.median(times[v]), 4), "overReference": round(statistics.median(times[v]) / ref, 3), "steps": len(times[v])} for v in variants]
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}",
        "torch": torch.__version__,
        "experiment": config.get("name"),
        "threads": args.threads,
        "batchSize": trainers[variants[0]].batch_size,
        "amp": str(trainers[variants[0]].amp_dtype),
        "rounds": args.rounds,
        "stepsPerRound": args.steps,
        "rows": rows,
        "loadAverageAtEnd": list(os.getloadavg()),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        atomic_write_text(Path(args.out), text + "\n")
        atomic_write_text(Path(args.out).with_suffix(".md"), markdown(result))


if __name__ == "__main__":
    main()
