"""One experiment's memory in training, for bench/training/memory.ts: a synthetic prepared pair at the
spec's grid (random intensities, random labels of the config's label values), two steps of the real
Trainer (no validation, no checkpoint), then one JSON line: peak memory (RSS, and allocated CUDA memory
on a GPU) and the parameter counts (frozen, trainable) of the model the spec builds.

    python bench/training/memory_step.py <spec.json> <config.json> <out_dir> <cpu|cuda> <workspace_root>
"""

import json
import sys
from pathlib import Path

import numpy as np

from llmed.data import write_prepared_volume
from llmed.train import Trainer

spec_path, config_path, out, device, workspace = sys.argv[1:6]
spec = json.loads(Path(spec_path).read_text())
config = json.loads(Path(config_path).read_text())
out = Path(out)
prepared = out / "prepared"
prepared.mkdir(parents=True, exist_ok=True)
nx, ny, nz = config["data"]["preprocess"]["shape"]
labels = list((config["data"]["preprocess"].get("labels") or {}).get("values") or [1, 2])
rng = np.random.default_rng(0)
for name in ("a", "b"):
    write_prepared_volume(prepared, name, rng.random((nz, ny, nx), dtype=np.float32))
    write_prepared_volume(prepared, f"{name}_labels", rng.choice([0, *labels], size=(nz, ny, nx)).astype(np.int32))


def pair(m, f):
    return {"moving": m, "fixed": f, "movingLabels": f"{m}_labels", "fixedLabels": f"{f}_labels"}


(prepared / "pairs.json").write_text(json.dumps({"title": "memory bench", "shape": [nx, ny, nz], "labels": labels, "train": [pair("a", "b"), pair("b", "a")], "val": [], "test": []}))
trainer = Trainer(out / "run", spec, config, prepared, {"device": device, "workspaceRoot": workspace})
status = trainer.run()
if status["state"] != "done":
    raise SystemExit(f"training failed: {status.get('message')}\n{status.get('traceback')}")
done = [json.loads(line) for line in (out / "run" / "log.jsonl").read_text().splitlines() if '"done"' in line][-1]
params = {id(p): p for p in trainer.model.parameters()}.values()
frozen = [p for p in params if not p.requires_grad]
trainable = [p for p in params if p.requires_grad]
print(
    json.dumps(
        {
            "peak_rss_mb": done.get("peak_rss_mb"),
            "peak_cuda_mb": done.get("peak_cuda_mb"),
            "frozen": sum(p.numel() for p in frozen),
            "frozen_mb": sum(p.numel() * p.element_size() for p in frozen) / 2**20,
            "trainable": sum(p.numel() for p in trainable),
            "amp": status.get("amp"),
            # trainable parameters the last step gave no gradient: DDP would need find_unused_parameters
            "unused": [n for n, p in trainer.model.named_parameters() if p.requires_grad and p.grad is None],
        }
    )
)
