"""Training under torchrun: 2 CPU processes with gloo on the toy network of test_train_engine.py.

The processes are started the way ``llmed train --nproc-per-node 2`` starts them (``python -m
torch.distributed.run``), with tests/dist_toy_worker.py as the entry so that the toy network and a
failing rank can be put in. What is pinned down:

* world 2 x batch 1 ends with the same weights (and logs the same losses) as one process with batch 2
  on the same pairs - through two cascade phases, so DDP is rebuilt and rank 0's best checkpoint is
  broadcast at the phase change. Tolerance 1e-5 (absolute, on weights of order 0.1-1): the two runs sum
  the same gradients in a different order, float32 rounding that Adam carries over a few steps;
* only rank 0 writes in the run folder (every write, rename and removal seen by a Python audit hook);
* a resume continues on another world size with the pairs the uninterrupted run would have drawn;
* a rank that raises ends the job, with its own message, quickly; the other rank reports a lost peer.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_engine import ToyRegNet, make_config, make_prepared, toy_loss

from llmed.train import Trainer, seed_everything

TESTS_DIR = Path(__file__).resolve().parent
WORKER = TESTS_DIR / "dist_toy_worker.py"
TOLERANCE = 1e-5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(tmp: Path, run_dir: Path, config: dict, prepared: Path, options: dict, nproc: int = 2, timeout: float = 240) -> tuple[subprocess.CompletedProcess, Path]:
    """Run the toy worker under torchrun; returns the finished process and the rank-error folder."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "config.json").write_text(json.dumps(config))
    (tmp / "spec.json").write_text("{}")
    errors = tmp / "rank-errors"
    errors.mkdir(exist_ok=True)
    (tmp / "options.json").write_text(json.dumps({"device": "cpu", "toySteps": 2, **options}))
    env = {**os.environ, "LLMED_RANK_ERROR_DIR": str(errors), "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(TESTS_DIR.parent), os.environ.get("PYTHONPATH", "")])}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(nproc),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        str(WORKER),
        str(run_dir),
        str(tmp / "spec.json"),
        str(tmp / "config.json"),
        str(prepared),
        str(tmp / "options.json"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    return done, errors


def single(run_dir: Path, config: dict, prepared: Path, steps: int = 2, **options) -> dict:
    trainer = Trainer(run_dir, {}, config, prepared, {"device": "cpu", "threads": 1, **options}, model_factory=lambda s: ToyRegNet(steps), loss_factory=lambda s: toy_loss)
    status = trainer.run()
    assert status["state"] == "done", status
    return status


def weights(run_dir: Path, tag: str = "last") -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / f"{tag}.safetensors"))


def events(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if e["event"] == kind]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("dist") / "prepared")


def test_two_processes_of_batch_1_train_as_one_of_batch_2(tmp_path, prepared):
    cascade = {"iterations": [3, 3], "schedule": "step-by-step"}
    dist_cfg = make_config(6, batchSize=1, cascade=cascade, validateEvery=3, checkpointEvery=3)
    done, _ = torchrun(tmp_path / "launch", tmp_path / "dist", dist_cfg, prepared, {"auditDir": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    single(tmp_path / "one", make_config(6, batchSize=2, cascade=cascade, validateEvery=3, checkpointEvery=3), prepared)

    diff = max_difference(weights(tmp_path / "dist"), weights(tmp_path / "one"))
    assert diff < TOLERANCE, f"world 2 x batch 1 and batch 2 differ by {diff}"
    # The weights moved: the comparison is not between two untouched initialisations (the trainer builds
    # the model right after seeding with train.seed).
    seed_everything(3)
    initial = ToyRegNet(2)
    for name in ("encoder.weight", "heads.0.weight", "heads.1.weight"):
        moved = float((weights(tmp_path / "dist")[name] - dict(initial.named_parameters())[name].detach()).abs().max())
        assert moved > 1e-3, f"{name} did not train"

    # The log is rank 0's alone, says the global batch, and its losses are the global batch's.
    start = events(tmp_path / "dist", "start")
    assert len(start) == 1 and start[0]["worldSize"] == 2 and start[0]["batchSize"] == 1 and start[0]["globalBatch"] == 2
    dist_losses = [e["loss"] for e in events(tmp_path / "dist", "step")]
    one_losses = [e["loss"] for e in events(tmp_path / "one", "step")]
    assert len(dist_losses) == 6 and dist_losses == pytest.approx(one_losses, abs=1e-5)
    assert [e["phase"] for e in events(tmp_path / "dist", "phase")] == [1, 2]

    # Only rank 0 wrote in the run folder (the audit hook saw rank 0's writes, so it was working).
    rank0 = (tmp_path / "rank-0.txt").read_text()
    assert "last.json" in rank0 and "log.jsonl" in rank0 and "status.json" in rank0
    assert (tmp_path / "rank-1.txt").read_text() == ""
    status = json.loads((tmp_path / "dist" / "status.json").read_text())
    assert status["state"] == "done" and status["world_size"] == 2 and status["global_batch"] == 2 and status["step"] == 6


def test_resume_on_another_world_size_continues_the_same_run(tmp_path, prepared):
    # 4 steps on one process of batch 2, then 4 more on 2 processes of batch 1 (same global batch) ...
    single(tmp_path / "run", make_config(4, batchSize=2), prepared, steps=1)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config["train"]["iterations"] = 8
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    done, _ = torchrun(tmp_path / "launch", tmp_path / "run", config, prepared, {"toySteps": 1, "resume": True, "batchSize": 1})
    assert done.returncode == 0, done.stderr[-3000:]
    # ... equal 8 uninterrupted steps on one process.
    single(tmp_path / "ref", make_config(8, batchSize=2), prepared, steps=1)
    diff = max_difference(weights(tmp_path / "run"), weights(tmp_path / "ref"))
    assert diff < TOLERANCE, f"resumed on world 2 differs from the uninterrupted run by {diff}"
    resumed = events(tmp_path / "run", "resume")
    assert len(resumed) == 1 and resumed[0]["step"] == 4 and resumed[0]["worldSize"] == 2
    record = json.loads((tmp_path / "run" / "checkpoints" / "last.json").read_text())
    assert record["step"] == 8 and record["samplesSeen"] == 16 and record["worldSize"] == 2


def test_a_rank_that_raises_ends_the_job_with_its_message(tmp_path, prepared):
    t0 = time.time()
    done, errors = torchrun(tmp_path / "launch", tmp_path / "run", make_config(50, checkpointEvery=1), prepared, {"toySteps": 1, "raiseAtStep": 3, "raiseOnRank": 1})
    assert done.returncode != 0
    assert time.time() - t0 < 120, "the job did not end soon after the failure"
    assert (errors / "rank-1.json").exists(), done.stderr[-4000:]
    failed = json.loads((errors / "rank-1.json").read_text())
    assert failed["rank"] == 1 and not failed["peer"]
    assert failed["message"] == "ValueError: toy failure on purpose at step 3" and "Traceback" in failed["traceback"]
    # Rank 0 either was stopped by torchrun before it noticed, or says it lost its peer - never the cause.
    other = errors / "rank-0.json"
    if other.exists():
        assert json.loads(other.read_text())["peer"], other.read_text()
    # Checkpoints of the steps before the failure are intact (rank 0 wrote them).
    record = json.loads((tmp_path / "run" / "checkpoints" / "last.json").read_text())
    assert 1 <= record["step"] <= 3


def test_ddp_leaves_the_frozen_base_weights_out(tmp_path):
    """DDP over the trainable parameters only: the frozen 'LLM' is neither broadcast nor reduced."""
    import torch.distributed as dist

    from llmed.distributed import DistributedContext
    from llmed.train import base_weight_names

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        ctx = DistributedContext(0, 1, 0, "gloo", torch.device("cpu"))
        model = ToyRegNet(2)
        base = base_weight_names(model, "step-by-step", [type("P", (), {"index": i})() for i in (1, 2)])
        assert base == ["llm.weight", "llm.bias"]
        ddp = ctx.wrap(model, base)
        assert set(ddp.parameters_to_ignore) == {"llm.weight", "llm.bias"}
        # What DDP broadcasts and reduces: the trainable and phase-frozen parameters, never the base weights.
        handled = {id(p) for p in ddp._module_parameters}
        assert id(model.llm.weight) not in handled and id(model.llm.bias) not in handled
        assert id(model.encoder.weight) in handled and id(model.heads[1].weight) in handled
        assert ctx.any_rank(False, True) == (False, True)
        assert ctx.mean_over_ranks(2.0, {"a": 1.0}) == (2.0, {"a": 1.0})
    finally:
        dist.destroy_process_group()
