"""Where the exported field predictor spends its time, and what onnxruntime's options and lower precisions
change (issue #15 item 5; a benchmark, not a test).

    .venv/bin/python bench/inference/profile_graph.py [--sizes demo,knee] [--rounds 7] [--large-rounds 3]
        [--threads 2,1] [--large-threads 2] [--out bench/results/inference-profile.json]

Runs on the models ``npm run bench:inference`` builds (``.cache/bench/inference/<size>/``: a real run,
exported by llmed.export, LoRA merged, fp32) and on the export's parity pair (the first labelled test pair).
In one process, interleaved round by round so that load drift falls on all alike:

* **torch eager** (load_run_model + merge_lora, fp32, no_grad — python_side.py's contender; the reference
  of every ratio at the same thread count);
* **onnxruntime sessions** on model.onnx: graph optimisation level (disabled / basic / extended / all),
  memory patterns off, the CPU arena off, spinning workers off, at 1 and 2 intra-op threads;
* **int8** (``onnxruntime.quantization.quantize_static``, QDQ, per-channel weights, activations calibrated
  on training pairs) and **fp16** (``onnxruntime.transformers.float16``, inputs and outputs kept float32)
  variants of the same graph, each with its field error against the fp32 graph on the timed pair (max and
  mean |Δ| in voxels) and the Dice of the labels warped by either field — a variant "passes" parity
  when max |Δfield| ≤ 0.1 voxel and |ΔDice| ≤ 0.1 points (the tolerance this benchmark states; the
  export's own fp32 parity limit is 1e-3 voxel).

Then onnxruntime's own profiler (``enable_profiling``) on the optimised fp32 graph at 2 threads: time per
operator type and the slowest nodes, and which fusions the optimiser made (node types before and after).
Writes ``bench/results/inference-profile.{json,md}`` (temporary file, then rename).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "bridge" / "python"))
sys.path.insert(0, str(HERE))

import onnxruntime as ort  # noqa: E402

from llmed.atomic import atomic_write_text  # noqa: E402

PARITY_MAX_VOXELS = 0.1
PARITY_DICE_POINTS = 0.1


def session(path: str | Path, threads: int, level: str = "all", mem_pattern: bool = True, arena: bool = True, spinning: bool = True, profile: str | None = None):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    o.enable_mem_pattern = mem_pattern
    o.enable_cpu_mem_arena = arena
    if not spinning:
        o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile:
        o.enable_profiling = True
        o.profile_file_prefix = profile
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def optimised_node_types(path: Path, threads: int) -> Counter:
    """Node types of the graph after onnxruntime's optimiser (written with optimized_model_filepath)."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        o.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])
        model = onnx.load(str(Path(tmp) / "opt.onnx"), load_external_data=False)
        return Counter(n.op_type for n in model.graph.node)


def node_types(path: Path) -> Counter:
    import onnx

    return Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


def op_profile(path: Path, feeds: dict, threads: int, runs: int = 5) -> dict:
    """Sum of onnxruntime's per-node kernel times by operator type over ``runs`` runs (after one warm-up)."""
    with tempfile.TemporaryDirectory() as tmp:
        s = session(path, threads, profile=str(Path(tmp) / "prof"))
        s.run(None, feeds)
        for _ in range(runs):
            s.run(None, feeds)
        events = json.loads(Path(s.end_profiling()).read_text())
    by_type, by_node, total = defaultdict(float), defaultdict(float), 0.0
    runs_seen = sum(1 for e in events if e.get("name") == "model_run")
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        op = e.get("args", {}).get("op_name", "?")
        us = float(e["dur"])
        by_type[op] += us
        by_node[(e["name"][: -len("_kernel_time")], op)] += us
        total += us
    n = max(runs_seen, 1)
    types = sorted(((op, us / n / 1000) for op, us in by_type.items()), key=lambda x: -x[1])
    nodes = sorted(((name, op, us / n / 1000) for (name, op), us in by_node.items()), key=lambda x: -x[2])
    return {
        "runs": n,
        "kernelMsPerRun": round(total / n / 1000, 2),
        "byType": [{"op": op, "ms": round(ms, 2), "share": round(ms / (total / n / 1000), 4)} for op, ms in types],
        "slowestNodes": [{"node": name, "op": op, "ms": round(ms, 2)} for name, op, ms in nodes[:12]],
    }


def dice_of_fields(field_a: np.ndarray, field_b: np.ndarray, moving_labels: np.ndarray, fixed_labels: np.ndarray) -> tuple[float, float]:
    """Mean Dice (%) against the fixed labels of the moving labels warped (nearest) by either field — the
    export's parity definition (llmed.export.mean_dice: labels present in either map)."""
    import torch

    from llmed.export import mean_dice
    from llmed.nn import warp

    fixed = torch.from_numpy(fixed_labels.astype(np.int64))
    labels = sorted(int(v) for v in np.union1d(np.unique(moving_labels), np.unique(fixed_labels)) if v != 0)
    out = []
    for f in (field_a, field_b):
        lab = torch.from_numpy(moving_labels.astype(np.float32))[None, None]
        warped = warp(lab, torch.from_numpy(f), mode="nearest")[0, 0].round().to(torch.int64)
        out.append(100.0 * mean_dice(warped, fixed, labels)[0])
    return out[0], out[1]


class CalibrationPairs:
    """onnxruntime's CalibrationDataReader over a few training pairs of the prepared folder."""

    def __init__(self, prepared: Path, pairs: list[dict]):
        self.items = [(read_volume(prepared, p["moving"]), read_volume(prepared, p["fixed"])) for p in pairs]
        self.i = 0

    def get_next(self):
        if self.i >= len(self.items):
            return None
        m, f = self.items[self.i]
        self.i += 1
        return {"moving": m, "fixed": f}

    def rewind(self):
        self.i = 0


def read_volume(prepared: Path, name: str) -> np.ndarray:
    """A prepared volume as (1, 1, K, J, I), read by llmed.data.open_volume."""
    from llmed.data import open_volume

    return np.ascontiguousarray(open_volume(prepared, name))[None].copy()


def build_variants(onnx_file: Path, out_dir: Path, prepared: Path, train_pairs: list[dict]) -> dict[str, dict]:
    """int8 (static QDQ) and fp16 versions of the graph; each {path} or {error} when the tool refuses."""
    variants: dict[str, dict] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        pre = out_dir / "model.pre.onnx"
        quant_pre_process(str(onnx_file), str(pre), skip_symbolic_shape=True)
        target = out_dir / "model.int8.onnx"
        quantize_static(
            str(pre),
            str(target),
            CalibrationPairs(prepared, train_pairs),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        variants["int8"] = {"path": str(target.relative_to(ROOT)), "how": f"quantize_static QDQ, per-channel int8 weights, uint8 activations, MinMax over {len(train_pairs)} training pairs"}
    except Exception as e:  # a benchmark records what the tool said and goes on
        variants["int8"] = {"error": f"{type(e).__name__}: {e}"}
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(onnx_file)), keep_io_types=True)
        target = out_dir / "model.fp16.onnx"
        onnx.save(model, str(target))
        variants["fp16"] = {"path": str(target.relative_to(ROOT)), "how": "onnxruntime.transformers.float16, float32 inputs and outputs"}
    except Exception as e:
        variants["fp16"] = {"error": f"{type(e).__name__}: {e}"}
    return variants


def measure(size: str, rounds: int, threads_list: list[int], warmups: int) -> dict:
    import torch
    from python_side import Contenders

    base = ROOT / ".cache" / "bench" / "inference" / size
    job = json.loads((base / "job.json").read_text())
    built = base / "run" / "export"
    onnx_file = built / "model.onnx"
    if not onnx_file.is_file():
        raise SystemExit(f"{onnx_file}: no exported model; run `npm run bench:inference` first (it builds the models this profile reads)")
    prepared = Path(job["preparedDir"])
    pairs = json.loads((prepared / "pairs.json").read_text())
    pair = next((p for p in pairs["test"] if p.get("movingLabels")), pairs["test"][0])
    header = json.loads((prepared / f"{pair['moving']}.json").read_text())
    kji = tuple(int(n) for n in header["shape"][-3:])
    contenders = Contenders(
        {
            "bridgePythonRoot": job["bridgePythonRoot"],
            "workspaceRoot": job["workspaceRoot"],
            "runDir": job["runDir"],
            "onnxFile": str(onnx_file),
            "plugins": job["plugins"],
            "moving": str(prepared / header["dataFile"]),
            "fixed": str(prepared / json.loads((prepared / f"{pair['fixed']}.json").read_text())["dataFile"]),
            "shapeKji": list(kji),
            "threads": threads_list,
        }
    )
    feeds = {"moving": contenders.moving_np, "fixed": contenders.fixed_np}
    reference_field = contenders.run("ort", max(threads_list))

    variants = build_variants(onnx_file, base / "variants", prepared, pairs["train"][:8])
    labels = None
    if pair.get("movingLabels") and pair.get("fixedLabels"):
        labels = (read_volume(prepared, pair["movingLabels"])[0, 0], read_volume(prepared, pair["fixedLabels"])[0, 0])
    for name, v in variants.items():
        if "path" not in v:
            continue
        try:
            s = session(ROOT / v["path"], max(threads_list))
            f = s.run(["field"], feeds)[0]
            diff = np.abs(f - reference_field)
            v["fieldMaxAbsVoxels"] = float(diff.max())
            v["fieldMeanAbsVoxels"] = float(diff.mean())
            if labels is not None:
                d_ref, d_var = dice_of_fields(reference_field, f, *labels)
                v["dice"] = {"fp32": round(d_ref, 3), name: round(d_var, 3)}
                v["parity"] = bool(diff.max() <= PARITY_MAX_VOXELS and abs(d_var - d_ref) <= PARITY_DICE_POINTS)
            else:
                v["parity"] = bool(diff.max() <= PARITY_MAX_VOXELS)
        except Exception as e:
            v["error"] = f"{type(e).__name__}: {e}"
            v.pop("path", None)

    # contenders: name -> (threads -> callable)
    calls: dict[str, dict[int, object]] = {}
    for n in threads_list:

        def torch_call(n=n):
            torch.set_num_threads(n)
            with torch.no_grad():
                return contenders.model(contenders.moving, contenders.fixed)["fields"][-1]

        calls.setdefault("torch eager", {})[n] = torch_call
        for label, kw in (
            ("ort all", {}),
            ("ort extended", {"level": "extended"}),
            ("ort basic", {"level": "basic"}),
            ("ort disabled", {"level": "disabled"}),
            ("ort all, no mem pattern", {"mem_pattern": False}),
            ("ort all, no arena", {"arena": False}),
            ("ort all, no spinning", {"spinning": False}),
        ):
            s = session(onnx_file, n, **kw)
            calls.setdefault(label, {})[n] = lambda s=s: s.run(["field"], feeds)
        for name, v in variants.items():
            if "path" in v:
                s = session(ROOT / v["path"], n)
                calls.setdefault(f"ort {name}", {})[n] = lambda s=s: s.run(["field"], feeds)

    times: dict[str, dict[int, list[float]]] = {k: {n: [] for n in threads_list} for k in calls}
    names = list(calls)
    for n in threads_list:
        for k in names:  # warm-up
            for _ in range(warmups):
                calls[k][n]()
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for k in order:
                t0 = time.perf_counter()
                calls[k][n]()
                times[k][n].append((time.perf_counter() - t0) * 1000)
                time.sleep(0.05)  # workers spin a while after a run; not into the next contender's time
            print(f"[{size}] {n} thread(s) round {r + 1}/{rounds}", flush=True)

    rows = []
    for k in names:
        for n in threads_list:
            med = statistics.median(times[k][n])
            ref = statistics.median(times["torch eager"][n])
            paired = statistics.median(ref_t / t for ref_t, t in zip(times["torch eager"][n], times[k][n]))
            rows.append({"contender": k, "threads": n, "medianMs": round(med, 1), "minMs": round(min(times[k][n]), 1), "torchOverThis": round(ref / med, 3), "pairedTorchOverThis": round(paired, 3)})

    profile = op_profile(onnx_file, feeds, max(threads_list))
    before, after = node_types(onnx_file), optimised_node_types(onnx_file, max(threads_list))
    return {
        "size": size,
        "shapeKji": list(kji),
        "pair": pair,
        "rounds": rounds,
        "rows": rows,
        "variants": variants,
        "profile": profile,
        "nodeTypesExported": dict(before.most_common()),
        "nodeTypesOptimised": dict(after.most_common()),
        "loadAverageAtEnd": list(os.getloadavg()),
    }


def markdown(result: dict) -> str:
    lines = [
        "# Inference profile of the exported field predictor (issue #15 item 5)",
        "",
        f"{result['machine']}; {result['versions']}; {result['date']}. Written by `bench/inference/profile_graph.py` on the models "
        "`npm run bench:inference` builds (fp32 export, LoRA merged). Median ms over interleaved rounds; "
        "*torch / this* is torch eager's median over this contender's at the same thread count (above 1 = faster than torch; "
        "issue #15 asks 1.5); *paired* is the median of the per-round ratios.",
        "",
    ]
    for s in result["sizes"]:
        lines += [f"## {s['size']} ({'×'.join(str(x) for x in reversed(s['shapeKji']))}), {s['rounds']} rounds", ""]
        lines += ["| contender | threads | median ms | min ms | torch / this | paired |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in sorted(s["rows"], key=lambda r: (r["threads"], -r["torchOverThis"]), reverse=False):
            lines.append(f"| {r['contender']} | {r['threads']} | {r['medianMs']} | {r['minMs']} | {r['torchOverThis']} | {r['pairedTorchOverThis']} |")
        lines += ["", f"Lower-precision variants (field against the fp32 graph on the timed pair; parity: max |Δ| ≤ {PARITY_MAX_VOXELS} voxel and |ΔDice| ≤ {PARITY_DICE_POINTS} points):", ""]
        for name, v in s["variants"].items():
            if "error" in v:
                lines.append(f"- {name}: not built or not run — {v['error']}")
            else:
                dice = f", Dice {v['dice']['fp32']} % (fp32) vs {v['dice'][name]} %" if "dice" in v else ""
                lines.append(f"- {name} ({v['how']}): max |Δfield| {v['fieldMaxAbsVoxels']:.3g} voxels, mean {v['fieldMeanAbsVoxels']:.3g}{dice} — parity {'passed' if v['parity'] else 'FAILED'}")
        p = s["profile"]
        lines += ["", f"onnxruntime's profiler, optimised fp32 graph, 2 threads: {p['kernelMsPerRun']} ms of kernel time per run ({p['runs']} runs).", ""]
        lines += ["| operator | ms per run | share |", "| --- | ---: | ---: |"]
        for t in p["byType"][:12]:
            lines.append(f"| {t['op']} | {t['ms']} | {100 * t['share']:.1f} % |")
        lines += ["", "Slowest nodes: " + "; ".join(f"{n['node']} ({n['op']}) {n['ms']} ms" for n in p["slowestNodes"][:6]), ""]
        lines += [
            "Node types exported → after onnxruntime's optimiser: "
            + ", ".join(f"{k} {v}" for k, v in s["nodeTypesExported"].items())
            + " → "
            + ", ".join(f"{k} {v}" for k, v in s["nodeTypesOptimised"].items()),
            "",
        ]
    lines += ["Reproduce: `npm run bench:inference` (builds the models), then `.venv/bin/python bench/inference/profile_graph.py`.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="demo,knee")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--large-rounds", type=int, default=3, help="rounds at the knee size (a call takes seconds)")
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--large-threads", default="2")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "inference-profile.json"))
    args = ap.parse_args()
    import torch

    # python_side.Contenders pins the inter-op pool to 1 thread, which torch allows once per process
    torch.set_num_interop_threads(1)
    torch.set_num_interop_threads = lambda n: None

    def plan(size: str) -> tuple[int, list[int], int]:
        small = size == "demo"
        return (args.rounds if small else args.large_rounds, [int(t) for t in (args.threads if small else args.large_threads).split(",")], 2 if small else 1)

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.processor() or platform.system()}",
        "versions": f"Python {platform.python_version()}, torch {torch.__version__}, onnxruntime {ort.__version__}",
        "sizes": [],
    }
    out = Path(args.out)
    for size in args.sizes.split(","):
        result["sizes"].append(measure(size, *plan(size)))
        for name, v in result["sizes"][-1]["variants"].items():
            print(f"[{size}] {name}: {v.get('error') or {k: v[k] for k in v if k not in ('path', 'how')}}", flush=True)
        atomic_write_text(out, json.dumps(result, indent=1) + "\n")  # after each size: a later failure keeps it
        atomic_write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
