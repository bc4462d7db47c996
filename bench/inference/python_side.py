"""The Python half of the inference benchmark: a long-lived process that inference.ts drives line by line.

    python bench/inference/python_side.py        (reads one JSON command per line on stdin)

Keeping one process alive lets the driver interleave single timed calls of every contender (Node
onnxruntime, torch eager, Python onnxruntime, the TypeScript warp, grid_sample), so that load from other
work on the machine drifts over all of them alike. Each reply is one JSON line on the real stdout;
anything the libraries print goes to stderr. Times are taken here around the call alone (perf_counter),
so the pipe is not part of them.

Commands
  {"cmd": "load", "bridgePythonRoot", "workspaceRoot", "runDir", "onnxFile", "moving", "fixed", "shapeKji", "threads": [2, 1],
   "torch": true}
      reads the two prepared volumes (raw float32, (K, J, I)), opens one onnxruntime session per thread
      count and, unless "torch" is false (a process that only runs another onnxruntime build), rebuilds
      the run's model as llmed.export does (load_run_model + merge_lora, fp32, eval, no grad).
  {"cmd": "field", "file"}   the displacement field (3, K, J, I) float32 the warps sample with
  {"cmd": "time", "what": "torch" | "ort" | "grid_sample" | "llmed_warp", "threads": n}   one timed call:
      wall ms, and CPU ms of the whole process (less sensitive to other load; with 1 thread ≈ the work)
  {"cmd": "outputs", "dir", "tag"}  writes onnxruntime's field (and torch's field and grid_sample's warped
      image when torch is loaded) there as raw float32, names starting with tag
  {"cmd": "quit"}
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

reply_stream = sys.stdout
sys.stdout = sys.stderr  # library chatter must not reach the protocol stream


def reply(obj: dict) -> None:
    reply_stream.write(json.dumps(obj) + "\n")
    reply_stream.flush()


class Contenders:
    def __init__(self, job: dict):
        sys.path.insert(0, job["bridgePythonRoot"])
        import onnxruntime as ort

        kji = tuple(int(n) for n in job["shapeKji"])
        self.kji = kji
        self.moving_np = np.fromfile(job["moving"], dtype="<f4").reshape(1, 1, *kji).copy()
        self.fixed_np = np.fromfile(job["fixed"], dtype="<f4").reshape(1, 1, *kji).copy()
        ort_from = os.path.relpath(os.path.dirname(ort.__file__), job["workspaceRoot"])  # no machine paths in results
        self.versions = {"python": platform.python_version(), "onnxruntime": ort.__version__, "onnxruntimeFrom": ort_from, "numpy": np.__version__}
        self.torch = None
        self.model = None
        self.lora_merged = None
        self.model_load_s = 0.0
        if job.get("torch", True):
            import torch

            from llmed.llm import merge_lora
            from llmed.train import load_run_model

            self.torch = torch
            torch.set_num_interop_threads(1)
            self.moving, self.fixed = torch.from_numpy(self.moving_np), torch.from_numpy(self.fixed_np)
            t0 = time.perf_counter()
            model, _ = load_run_model(job["runDir"], "last", "cpu", workspace_root=job["workspaceRoot"], plugins=job["plugins"])
            model = model.float().eval()
            self.lora_merged = merge_lora(model)
            for p in model.parameters():
                p.requires_grad_(False)
            self.model = model
            self.model_load_s = time.perf_counter() - t0
            self.versions.update(torch=torch.__version__, torchParallel=torch.__config__.parallel_info().splitlines()[:8])

        self.sessions = {}
        for n in job["threads"]:
            options = ort.SessionOptions()
            options.intra_op_num_threads = int(n)
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.sessions[int(n)] = ort.InferenceSession(job["onnxFile"], options, providers=["CPUExecutionProvider"])
        self.image = None
        self.grid = None
        self.field = None

    def set_field(self, file: str) -> None:
        from llmed.nn import _normaliser, identity_grid

        torch = self.torch
        self.field = torch.from_numpy(np.fromfile(file, dtype="<f4").reshape(1, 3, *self.kji).copy())
        # The sampling grid grid_sample takes, formed once outside the timed call: normalised identity
        # plus the field in normalised units (channel (i, j, k) = grid (x, y, z)), as llmed.nn.warp forms it.
        scale = _normaliser(self.kji, "cpu", torch.float32)
        base = identity_grid(self.kji, "cpu", torch.float32) * scale - 1.0
        self.grid = (base + self.field.permute(0, 2, 3, 4, 1) * scale).contiguous()
        self.image = self.moving

    def run(self, what: str, threads: int):
        if what == "ort":
            return self.sessions[int(threads)].run(["field"], {"moving": self.moving_np, "fixed": self.fixed_np})[0]
        torch = self.torch
        torch.set_num_threads(int(threads))
        with torch.no_grad():
            if what == "torch":
                return self.model(self.moving, self.fixed)["fields"][-1]
            if what == "grid_sample":
                return torch.nn.functional.grid_sample(self.image, self.grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            if what == "llmed_warp":
                from llmed.nn import warp

                return warp(self.image, self.field)
        raise ValueError(f"unknown contender {what!r}")

    def time(self, what: str, threads: int) -> tuple[float, float]:
        """Wall time and CPU time of this whole process (every thread) for one call, in ms."""
        c0, t0 = time.process_time(), time.perf_counter()
        self.run(what, threads)
        return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000

    def outputs(self, folder: str, tag: str) -> dict:
        """Write this process's outputs as raw float32 into ``folder`` (names start with ``tag``)."""
        out = Path(folder)
        threads = max(self.sessions)
        ort_field = self.run("ort", threads)
        np.ascontiguousarray(ort_field, dtype="<f4").tofile(out / f"{tag}_ort_field.f32")
        if self.torch is None:
            return {}
        torch_field = self.run("torch", threads).numpy()
        warped = self.run("grid_sample", threads).numpy()
        np.ascontiguousarray(torch_field, dtype="<f4").tofile(out / f"{tag}_torch_field.f32")
        np.ascontiguousarray(warped, dtype="<f4").tofile(out / f"{tag}_grid_sample_warped.f32")
        return {"torchVsOrt": float(np.abs(torch_field - ort_field).max()), "fieldAbsMax": float(np.abs(torch_field).max())}


def main() -> None:
    contenders: Contenders | None = None
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        try:
            cmd = command["cmd"]
            if cmd == "load":
                contenders = Contenders(command)
                reply({"ok": True, "modelLoadSeconds": round(contenders.model_load_s, 2), "loraMerged": contenders.lora_merged, "versions": contenders.versions, "pid": os.getpid()})
            elif cmd == "field":
                contenders.set_field(command["file"])
                reply({"ok": True})
            elif cmd == "time":
                wall_ms, cpu_ms = contenders.time(command["what"], int(command["threads"]))
                reply({"ok": True, "ms": wall_ms, "cpuMs": cpu_ms})
            elif cmd == "outputs":
                reply({"ok": True, **contenders.outputs(command["dir"], command.get("tag", "python"))})
            elif cmd == "quit":
                reply({"ok": True})
                return
            else:
                reply({"ok": False, "message": f"unknown command {cmd!r}"})
        except Exception as err:  # report, keep serving: the driver decides
            import traceback

            reply({"ok": False, "message": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})


if __name__ == "__main__":
    main()
