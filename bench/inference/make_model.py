"""Build the model the inference benchmark times: a run trained for a few steps, exported to ONNX.

    python bench/inference/make_model.py <job.json>

The job (written by inference.ts) names the run folder, the composed spec and config, the prepared
dataset, the workspace root and how many steps to train. Weight values do not change inference speed,
so a step or two is enough; what matters is that the run is a real one (Trainer checkpoints, LoRA
merge, llmed.export with its parity check), exactly as `llmed train` + `llmed export` would leave it.

When the job has ``synthetic`` set, the prepared dataset is made here first: a few smooth random
volumes (Gaussian-filtered noise plus a bright blob) with label maps cut from them by intensity, in the
prepared-cache format (raw little-endian float32/int32 + JSON header), enough pairs for training, one
validation and one test pair (the export checks parity on the first labelled test pair).

A build is reused when the run folder holds an export made from the same spec, config and prepared
data (fingerprint in ``bench-fingerprint.txt``) unless ``rebuild`` is set. Prints one JSON line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def write_prepared_volume(folder: Path, name: str, data: np.ndarray) -> None:
    """The cache-format writer of llmed.data, marked as this benchmark's synthetic volume."""
    from llmed.data import write_prepared_volume as write

    write(folder, name, data, preprocessing="bench/inference synthetic volume")


def make_synthetic_prepared(folder: Path, shape_ijk: list[int], scans: int = 4, seed: int = 0) -> None:
    """A small prepared dataset of smooth random volumes; built under a temporary name, then renamed."""
    from scipy.ndimage import gaussian_filter

    if (folder / "pairs.json").is_file() and json.loads((folder / "pairs.json").read_text()).get("shape") == list(shape_ijk):
        return
    staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape_ijk
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij", sparse=True)
    names = []
    for s in range(scans):
        texture = gaussian_filter(rng.standard_normal((nz, ny, nx)).astype(np.float32), sigma=max(2.0, min(shape_ijk) / 24))
        texture /= np.abs(texture).max() + 1e-6
        cx, cy, cz = (n / 2 + rng.uniform(-n / 16, n / 16) for n in (nx, ny, nz))
        r2 = ((i - cx) / (nx / 3.5)) ** 2 + ((j - cy) / (ny / 3.5)) ** 2 + ((k - cz) / (nz / 3.5)) ** 2
        image = np.exp(-r2) * (0.8 + 0.2 * texture)
        image = ((image - image.min()) / (image.max() - image.min())).astype(np.float32)
        labels = np.digitize(image, [0.3, 0.55, 0.8]).astype(np.int32)  # 0 background, 1..3 shells
        name = f"scan{s}"
        write_prepared_volume(staging, name, image)
        write_prepared_volume(staging, f"{name}_labels", labels)
        names.append(name)

    def pair(moving: str, fixed: str) -> dict:
        return {"moving": moving, "fixed": fixed, "movingLabels": f"{moving}_labels", "fixedLabels": f"{fixed}_labels"}

    train = [pair(a, b) for a in names[:-1] for b in names[:-1] if a != b]
    held_out = [pair(names[-1], names[0])]
    pairs = {"title": "bench/inference synthetic smooth volumes", "shape": list(shape_ijk), "labels": [1, 2, 3], "train": train, "val": held_out, "test": held_out}
    (staging / "pairs.json").write_text(json.dumps(pairs))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(staging, folder)


def fingerprint(spec: dict, config: dict, prepared: Path) -> str:
    pairs = (prepared / "pairs.json").read_text()
    return hashlib.sha256(json.dumps({"spec": spec, "config": config, "pairs": pairs}, sort_keys=True).encode()).hexdigest()[:16]


def main() -> int:
    job = json.loads(Path(sys.argv[1]).read_text())
    sys.path.insert(0, job["bridgePythonRoot"])
    import torch

    from llmed.export import export_run
    from llmed.train import Trainer

    threads = int(job.get("threads", 2))
    torch.set_num_threads(threads)
    run = Path(job["runDir"])
    prepared = Path(job["preparedDir"])
    spec = json.loads(Path(job["specFile"]).read_text())
    config = json.loads(Path(job["configFile"]).read_text())
    steps = int(job.get("steps", 1))
    config["train"] = {**config["train"], "iterations": steps, "validateEvery": 10 * steps, "checkpointEvery": steps, "timeBudgetMinutes": 0}

    t0 = time.time()
    if job.get("synthetic"):
        make_synthetic_prepared(prepared, job["synthetic"])
    prepare_s = time.time() - t0

    stamp = fingerprint(spec, config, prepared)
    stamp_file = run / "bench-fingerprint.txt"
    manifest_file = run / "export" / "manifest.json"
    if not job.get("rebuild") and manifest_file.is_file() and stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        manifest = json.loads(manifest_file.read_text())
        print(
            json.dumps(
                {
                    "ok": True,
                    "reused": True,
                    "exportDir": str(run / "export"),
                    "fingerprint": stamp,
                    "parity": manifest["parity"],
                    "parameters": manifest["model"]["parameters"],
                    "onnxBytes": manifest["model"]["bytes"],
                }
            ),
            flush=True,
        )
        return 0

    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    (run / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    (run / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    t0 = time.time()
    status = Trainer(run, spec, config, prepared, {"device": "cpu", "valPairs": 1, "threads": threads, "workspaceRoot": job["workspaceRoot"]}).run()
    train_s = time.time() - t0
    if status["state"] != "done":
        print(json.dumps({"ok": False, "stage": "train", "message": status.get("message"), "traceback": status.get("traceback")}), flush=True)
        return 1
    t0 = time.time()
    manifest = export_run(run, "last", workspace_root=job["workspaceRoot"], prepared_dir=prepared, threads=threads, plugins=job["plugins"])
    export_s = time.time() - t0
    stamp_file.write_text(stamp + "\n")
    print(
        json.dumps(
            {
                "ok": True,
                "reused": False,
                "exportDir": str(run / "export"),
                "fingerprint": stamp,
                "parity": manifest["parity"],
                "parameters": manifest["model"]["parameters"],
                "onnxBytes": manifest["model"]["bytes"],
                "seconds": {"prepare": round(prepare_s, 1), "train": round(train_s, 1), "export": round(export_s, 1)},
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
