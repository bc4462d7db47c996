"""Reference for the bridge-overhead benchmark: the same Trainer, same spec/config/prepared data, run
in a plain Python process with no Node on the other side. Prints one JSON line. An optional 8th argument
(JSON) adds Trainer options (bench/training/cpu-conv.ts passes {"cpuConv": "native" | "onednn"})."""

import json
import resource
import sys
import time

sys.path.insert(0, sys.argv[5])
for root in json.loads(sys.argv[6]):
    sys.path.insert(0, root)
from llmed.train import Trainer  # noqa: E402

run_dir, spec_path, config_path, prepared = sys.argv[1:5]
spec = json.load(open(spec_path))
config = json.load(open(config_path))
t0 = time.time()
extra = json.loads(sys.argv[8]) if len(sys.argv) > 8 else {}
status = Trainer(run_dir, spec, config, prepared, {"workspaceRoot": sys.argv[7], "device": "cpu", **extra}).run()
wall = time.time() - t0
print(json.dumps({"state": status["state"], "steps": status["step"], "wall_s": wall, "train_s": status["elapsed_s"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
