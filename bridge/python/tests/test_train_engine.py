"""Trainer behaviour on a tiny prepared dataset and a toy registration network.

The toy network keeps the model-plane contract (``model(moving, fixed)`` -> multiscale fields and
warped images, ``freeze_for_step``) with a frozen layer standing in for the LLM, so these tests pin
down the engine - resume, NaN handling, stop, time budget, cascade phases, half resolution -
independently of the real plugins (test_train_api.py runs the real assembly).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from fixtures import NO_AUGMENT
from llmed.checkpoint import read_checkpoint_record
from llmed.data import write_prepared_volume
from llmed.nn import warp
from llmed.train import TRAIN_KEYS, Trainer, TrainingConfigError, lr_at, plan_phases, train_section

SHAPE_IJK = (16, 12, 8)  # prepared grid (nx, ny, nz); torch (K, J, I) = (8, 12, 16)


# ---- a tiny prepared dataset in the cache format ---------------------------------------------------


def write_volume(folder: Path, name: str, data: np.ndarray) -> None:
    """Write ``data`` (K, J, I) as a prepared volume (cache.ts format)."""
    write_prepared_volume(folder, name, data)


def make_prepared(folder: Path, n_scans: int = 4, shape_ijk=SHAPE_IJK, seed: int = 0, labels: bool = True, true_fields: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape_ijk
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    names = []
    for s in range(n_scans):
        cx, cy, cz = nx / 2 + rng.uniform(-2, 2), ny / 2 + rng.uniform(-2, 2), nz / 2 + rng.uniform(-1, 1)
        r2 = ((i - cx) / (nx / 4)) ** 2 + ((j - cy) / (ny / 4)) ** 2 + ((k - cz) / (nz / 4)) ** 2
        image = np.exp(-r2).astype(np.float32) + 0.05 * rng.standard_normal((nz, ny, nx)).astype(np.float32)
        name = f"scan{s}"
        write_volume(folder, name, image)
        if labels:
            label_map = np.where(r2 < 0.5, 1, np.where(r2 < 1.5, 2, 0)).astype(np.int32)
            write_volume(folder, f"{name}_labels", label_map)
        names.append(name)

    def pair(m: str, f: str) -> dict:
        p = {"moving": m, "fixed": f}
        if labels:
            p.update(movingLabels=f"{m}_labels", fixedLabels=f"{f}_labels")
        if true_fields:
            # a constant shift of one voxel along i stands in for the pair's known deformation
            name = f"{m}_to_{f}_truefield"
            field = np.zeros((3, nz, ny, nx), np.float32)
            field[0] = 1.0
            write_prepared_volume(folder, name, field)
            p["groundTruthField"] = name
        return p

    train = [pair(a, b) for a in names[:-1] for b in names[:-1] if a != b]
    val = [pair(names[-1], names[0]), pair(names[0], names[-1])]
    pairs = {"title": "toy blobs", "shape": list(shape_ijk), "labels": [1, 2] if labels else [], "train": train, "val": val, "test": val}
    (folder / "pairs.json").write_text(json.dumps(pairs))
    return folder


# ---- a toy network with the model-plane contract ----------------------------------------------------


class ToyRegNet(nn.Module):
    """Conv encoder -> frozen 'LLM' linear -> one flow head per cascade step (fields add up)."""

    def __init__(self, steps: int = 1):
        super().__init__()
        self.encoder = nn.Conv3d(2, 4, 3, padding=1)
        self.llm = nn.Linear(4, 4)
        self.llm.requires_grad_(False)
        self.heads = nn.ModuleList([nn.Conv3d(4, 3, 3, padding=1) for _ in range(steps)])
        self.register_buffer("field_scale", torch.tensor(0.5))
        self.active_steps = steps
        self.freeze_calls: list[tuple[int, str]] = []

    def freeze_for_step(self, step: int, schedule: str) -> None:
        self.freeze_calls.append((step, schedule))
        self.active_steps = step
        self.encoder.requires_grad_(step == 1 or schedule == "joint")
        for i, head in enumerate(self.heads):
            head.requires_grad_(i == step - 1 or (schedule == "joint" and i < step))

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> dict:
        h = F.leaky_relu(self.encoder(torch.cat([moving, fixed], 1)), 0.2)
        h = self.llm(h.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        full = sum(head(h) for head in self.heads[: self.active_steps]) * self.field_scale
        fields = [F.avg_pool3d(full, 4) / 4, F.avg_pool3d(full, 2) / 2, full]
        return {"fields": fields, "warped": [warp(moving, f) for f in fields], "steps": self.active_steps}


def toy_loss(out: dict, batch: dict) -> tuple[torch.Tensor, dict]:
    field = out["fields"][-1]
    sim = F.mse_loss(out["warped"][-1], batch["fixed"])
    grad = sum(field.diff(dim=d).pow(2).mean() for d in (2, 3, 4)) / 3
    terms = {"mse": sim, "grad": grad}
    total = sim + 0.1 * grad
    if "moving_labels" in batch:
        warped = warp(batch["moving_labels"], field)
        inter = (warped * batch["fixed_labels"]).sum((2, 3, 4))
        dice = (2 * inter / (warped + batch["fixed_labels"]).sum((2, 3, 4)).clamp_min(1e-5)).mean()
        terms["dice"] = -dice
        total = total - 0.1 * dice
    return total, terms


def make_config(iterations: int = 6, **train) -> dict:
    t = {
        "iterations": iterations,
        "lr": 1e-2,
        "lrSchedule": "constant",
        "warmup": 0,
        "optimizer": "adam",
        "batchSize": 1,
        "amp": False,  # CPU bf16 autocast (amp on a CPU with AMX / AVX512-BF16) would make the numbers host-dependent
        "seed": 3,
        "validateEvery": 2,
        "checkpointEvery": 2,
        "timeBudgetMinutes": 0,
        "augment": NO_AUGMENT,
    }
    t.update(train)
    return {"name": "toy", "train": t}


def make_spec(shape_ijk=SHAPE_IJK) -> dict:
    return {"version": 1, "experiment": "toy", "input": {"type": "volume", "channels": 1, "spatial": list(shape_ijk)}}


def trainer_for(run_dir: Path, prepared: Path, config: dict, *, steps: int = 1, spec: dict | None = None, loss=toy_loss, **options) -> Trainer:
    options.setdefault("device", "cpu")
    return Trainer(run_dir, spec or make_spec(), config, prepared, options, model_factory=lambda _spec: ToyRegNet(steps), loss_factory=lambda _spec: loss)


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def step_losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events(run_dir) if e["event"] == "step"}


@pytest.fixture()
def prepared(tmp_path: Path) -> Path:
    return make_prepared(tmp_path / "prepared")


# ---- tests ------------------------------------------------------------------------------------------


def test_a_run_trains_validates_checkpoints_and_logs(tmp_path: Path, prepared: Path):
    run = tmp_path / "run"
    status = trainer_for(run, prepared, make_config(6)).run()
    assert status["state"] == "done", status
    assert status["step"] == 6 and status["total"] == 6 and status["device"] == "cpu" and status["amp"] is None
    assert status["val_dice"] is not None and 0 <= status["val_dice"] <= 1
    assert status["best"]["metric"] == "dice"
    kinds = [e["event"] for e in events(run)]
    assert kinds[0] == "start" and kinds[-1] == "done"
    # three validations plus the step-0 baseline of the unregistered pairs
    assert kinds.count("step") == 6 and kinds.count("val") == 4
    baseline = next(e for e in events(run) if e["event"] == "val")
    assert baseline["step"] == 0 and baseline["identity"] is True and 0 <= baseline["dice"] <= 1
    assert status["initial_dice"] == baseline["dice"]
    assert {e["step"] for e in events(run) if e["event"] == "checkpoint" and e["which"] == "last"} == {2, 4, 6}
    for name in ("spec.json", "config.json", "checkpoints/last.safetensors", "checkpoints/last.optim.safetensors", "checkpoints/last.json", "checkpoints/best.safetensors", "checkpoints/best.json"):
        assert (run / name).exists(), name
    record = read_checkpoint_record(run / "checkpoints", "last")
    assert record["step"] == 6 and record["phase"] == 1 and "rng" in record and record["best"] == status["best"]
    # the frozen stand-in LLM is a base weight: fingerprinted, not stored; trained parts and buffers are stored
    tensors = load_file(str(run / "checkpoints" / "last.safetensors"))
    assert "llm.weight" not in tensors and "encoder.weight" in tensors and "field_scale" in tensors
    assert record["baseWeights"]["count"] == 2 and len(record["baseWeights"]["sha256"]) == 64
    assert not list((run / "checkpoints").glob("*.tmp-*"))


def test_validation_reports_field_magnitude_and_endpoint_error_against_the_true_field(tmp_path: Path):
    prepared = make_prepared(tmp_path / "prepared-fields", true_fields=True)
    run = tmp_path / "run"
    status = trainer_for(run, prepared, make_config(2)).run()
    assert status["state"] == "done", status
    vals = [e for e in events(run) if e["event"] == "val"]
    identity, trained = vals[0], vals[-1]
    # identity: zero field, so the endpoint error is the true shift of one voxel times the i spacing (1 mm here)
    assert identity["identity"] is True and identity["fieldMagnitude"] == 0.0
    assert identity["epe"] == pytest.approx(1.0, abs=1e-6)
    assert trained["fieldMagnitude"] > 0 and math.isfinite(trained["epe"]) and "dice" in trained


def test_the_loss_goes_down(tmp_path: Path, prepared: Path):
    trainer_for(tmp_path / "run", prepared, make_config(30, validateEvery=30, checkpointEvery=30)).run()
    losses = step_losses(tmp_path / "run")
    assert np.mean([losses[s] for s in range(26, 31)]) < np.mean([losses[s] for s in range(1, 6)])


STRONG_AUGMENT = {"swap": 0.5, "warpFixed": {"probability": 0.5, "maxDisplacement": 1.0, "spacing": 4.0}}


@pytest.mark.parametrize("augment", [NO_AUGMENT, STRONG_AUGMENT], ids=["plain", "augmented"])
def test_resume_continues_with_identical_losses(tmp_path: Path, prepared: Path, augment: dict):
    config = make_config(8, checkpointEvery=3, validateEvery=3, augment=augment)
    straight = tmp_path / "straight"
    trainer_for(straight, prepared, config).run()
    if augment is STRONG_AUGMENT:  # the augmentation reaches the loss: other pairs than the plain run's
        plain = tmp_path / "plain"
        trainer_for(plain, prepared, make_config(8, checkpointEvery=3, validateEvery=3)).run()
        a, p = step_losses(straight), step_losses(plain)
        assert sum(a[s] != p[s] for s in range(1, 9)) >= 3

    interrupted = tmp_path / "interrupted"
    holder: dict = {}

    def stopping_loss(out, batch):
        total, terms = toy_loss(out, batch)
        holder["calls"] = holder.get("calls", 0) + 1
        if holder["calls"] == 5:  # during step 5: the step finishes, then the run stops and saves
            holder["trainer"].stop()
        return total, terms

    first = trainer_for(interrupted, prepared, config, loss=stopping_loss)
    holder["trainer"] = first
    status = first.run()
    assert status["state"] == "stopped" and status["step"] == 5 and status["reason"] == "requested"
    assert read_checkpoint_record(interrupted / "checkpoints", "last")["step"] == 5

    resumed = trainer_for(interrupted, prepared, config, resume=True).run()
    assert resumed["state"] == "done" and resumed["start_step"] == 5 and resumed["step"] == 8
    a, b = step_losses(straight), step_losses(interrupted)
    assert [b[s] for s in range(1, 9)] == [a[s] for s in range(1, 9)]  # bit-identical, not just close
    ta = load_file(str(straight / "checkpoints" / "last.safetensors"))
    tb = load_file(str(interrupted / "checkpoints" / "last.safetensors"))
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert [e["event"] for e in events(interrupted)].count("resume") == 1


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path: Path, prepared: Path):
    calls = {"n": 0}

    def exploding_loss(out, batch):
        total, terms = toy_loss(out, batch)
        calls["n"] += 1
        if calls["n"] == 5:
            terms = {**terms, "mse": terms["mse"] * float("nan")}
            total = total * float("nan")
        return total, terms

    run = tmp_path / "run"
    status = trainer_for(run, prepared, make_config(8, validateEvery=100, checkpointEvery=2), loss=exploding_loss).run()
    assert status["state"] == "error" and status["kind"] == "nan"
    assert "step 5" in status["message"] and "mse" in status["message"] and "last good checkpoint" in status["message"]
    assert status["step"] == 4
    assert read_checkpoint_record(run / "checkpoints", "last")["step"] == 4
    last = events(run)[-1]
    assert last["event"] == "error" and last["kind"] == "nan" and "step 5" in last["message"]


def running_slow_trainer(run: Path, prepared: Path) -> Trainer:
    """A long run (50 ms a step) started in its background thread and past its second step."""

    def slow_loss(out, batch):
        time.sleep(0.05)
        return toy_loss(out, batch)

    trainer = trainer_for(run, prepared, make_config(10_000, validateEvery=10_000, checkpointEvery=10_000), loss=slow_loss)
    trainer.start()
    deadline = time.time() + 30
    while trainer.status()["step"] < 2 and time.time() < deadline:
        time.sleep(0.02)
    return trainer


def test_stop_from_another_thread_saves_last_and_says_stopped(tmp_path: Path, prepared: Path):
    run = tmp_path / "run"
    trainer = running_slow_trainer(run, prepared)
    trainer.stop()
    status = trainer.wait(30)
    assert status["state"] == "stopped" and status["reason"] == "requested"
    assert 2 <= status["step"] < 10_000
    assert read_checkpoint_record(run / "checkpoints", "last")["step"] == status["step"]
    assert events(run)[-1]["event"] == "stopped"


def test_time_budget_stops_cleanly_and_says_so(tmp_path: Path, prepared: Path):
    def slow_loss(out, batch):
        time.sleep(0.1)
        return toy_loss(out, batch)

    run = tmp_path / "run"
    config = make_config(1000, validateEvery=1000, checkpointEvery=1000, timeBudgetMinutes=0.25 / 60)  # 0.25 s
    status = trainer_for(run, prepared, config, loss=slow_loss).run()
    assert status["state"] == "stopped" and status["reason"] == "time-budget"
    assert "time budget" in status["message"] and "resume" in status["message"]
    assert 1 <= status["step"] <= 5
    assert read_checkpoint_record(run / "checkpoints", "last")["step"] == status["step"]
    stopped = events(run)[-1]
    assert stopped["event"] == "stopped" and stopped["reason"] == "time-budget"


def test_cascade_phases_switch_trainable_parts_and_are_recorded(tmp_path: Path, prepared: Path):
    config = make_config(7, validateEvery=100, checkpointEvery=100, cascade={"schedule": "step-by-step", "iterations": [3, 2, 2]})
    run = tmp_path / "run"
    models: list[ToyRegNet] = []

    def factory(_spec):
        models.append(ToyRegNet(3))
        return models[-1]

    trainer = Trainer(run, make_spec(), config, prepared, {"device": "cpu", "phaseStart": "last"}, model_factory=factory, loss_factory=lambda _s: toy_loss)
    # snapshot the weights at each phase switch to see what trained in which phase
    snapshots = {}
    original_enter = trainer._enter_phase

    def enter(pos, resuming):
        snapshots[pos] = {k: v.clone() for k, v in models[-1].state_dict().items()}
        original_enter(pos, resuming)

    trainer._enter_phase = enter
    status = trainer.run()
    assert status["state"] == "done" and status["phase"] == 3 and status["phases"] == 3
    model = models[-1]
    # base-weight detection runs every phase's freezing once, then training calls each phase in turn
    assert model.freeze_calls[-3:] == [(1, "step-by-step"), (2, "step-by-step"), (3, "step-by-step")]
    phase_events = [e for e in events(run) if e["event"] == "phase"]
    assert [(e["phase"], e["start"], e["iterations"]) for e in phase_events] == [(1, 0, 3), (2, 3, 2), (3, 5, 2)]
    final = model.state_dict()
    changed = lambda a, b, key: not torch.equal(a[key], b[key])  # noqa: E731
    # phase 1 trained the encoder and head 0; phase 2 only head 1; phase 3 only head 2
    assert changed(snapshots[0], snapshots[1], "encoder.weight") and changed(snapshots[0], snapshots[1], "heads.0.weight")
    assert not changed(snapshots[0], snapshots[1], "heads.1.weight")
    assert not changed(snapshots[1], snapshots[2], "encoder.weight") and not changed(snapshots[1], snapshots[2], "heads.0.weight")
    assert changed(snapshots[1], snapshots[2], "heads.1.weight")
    assert not changed(snapshots[2], final, "heads.1.weight") and changed(snapshots[2], final, "heads.2.weight")
    # phase ends checkpoint; the record names the phase; heads frozen later are still stored
    lasts = [(e["step"], e["phase"]) for e in events(run) if e["event"] == "checkpoint" and e["which"] == "last"]
    assert lasts == [(3, 1), (5, 2), (7, 3)]
    assert read_checkpoint_record(run / "checkpoints", "last")["phase"] == 3
    stored = load_file(str(run / "checkpoints" / "last.safetensors"))
    assert {"encoder.weight", "heads.0.weight", "heads.1.weight", "heads.2.weight"} <= set(stored)
    assert "llm.weight" not in stored


def test_the_learning_rate_warms_up_and_decays_within_each_cascade_phase(tmp_path: Path, prepared: Path):
    config = make_config(9, validateEvery=100, checkpointEvery=100, lrSchedule="cosine", warmup=0.4, cascade={"schedule": "step-by-step", "iterations": [5, 4]})
    holder: dict = {"lrs": []}

    def recording_loss(out, batch):
        holder["lrs"].append(holder["trainer"].optimizer.param_groups[0]["lr"])
        return toy_loss(out, batch)

    holder["trainer"] = trainer_for(tmp_path / "run", prepared, config, steps=2, loss=recording_loss)
    assert holder["trainer"].run()["state"] == "done"
    lr = 1e-2
    # phase 1 (5 steps): 2 warm-up steps (ceil 0.4·5) then cosine over the other 3; phase 2 starts its own curve
    expected = [lr_at(i, 5, lr, 0.4, "cosine") for i in range(5)] + [lr_at(i, 4, lr, 0.4, "cosine") for i in range(4)]
    assert holder["lrs"] == pytest.approx(expected)
    assert expected[:3] == pytest.approx([lr / 2, lr, lr]) and expected[4] < 0.3 * lr and expected[5] == pytest.approx(lr / 2)
    # the constant schedule without warm-up is the plain lr at every step (the paper configs' setting)
    assert [lr_at(i, 5, lr, 0.0, "constant") for i in range(5)] == [lr] * 5


def test_cascade_resume_inside_a_later_phase_is_identical(tmp_path: Path, prepared: Path):
    config = make_config(7, validateEvery=2, checkpointEvery=100, lrSchedule="cosine", warmup=0.3, cascade={"schedule": "step-by-step", "iterations": [3, 2, 2]})
    straight = tmp_path / "straight"
    trainer_for(straight, prepared, config, steps=3).run()

    run = tmp_path / "run"
    holder: dict = {"calls": 0}

    def stopping_loss(out, batch):
        holder["calls"] += 1
        if holder["calls"] == 4:  # the first step of phase 2
            holder["trainer"].stop()
        return toy_loss(out, batch)

    holder["trainer"] = trainer_for(run, prepared, config, steps=3, loss=stopping_loss)
    assert holder["trainer"].run()["step"] == 4
    assert read_checkpoint_record(run / "checkpoints", "last")["phase"] == 2
    status = trainer_for(run, prepared, config, steps=3, resume=True).run()
    assert status["state"] == "done"
    a, b = step_losses(straight), step_losses(run)
    assert [b[s] for s in range(1, 8)] == [a[s] for s in range(1, 8)]
    # the phase-2 start from phase 1's best checkpoint happened in both runs
    assert any(e["event"] == "phase-start-from-best" for e in events(straight))


def test_plan_phases_checks_the_sum():
    assert [p.end for p in plan_phases({"iterations": 5, "cascade": {"schedule": "joint", "iterations": [2, 3]}})[1]] == [2, 5]
    with pytest.raises(Exception, match="add up to 4"):
        plan_phases({"iterations": 5, "cascade": {"schedule": "joint", "iterations": [2, 2]}})


def test_half_resolution_network_with_full_resolution_loss(tmp_path: Path):
    prepared = make_prepared(tmp_path / "prepared", shape_ijk=(16, 16, 16))
    seen_shapes = []

    class Recording(ToyRegNet):
        def forward(self, moving, fixed):
            seen_shapes.append(tuple(moving.shape[2:]))
            return super().forward(moving, fixed)

    def loss(out, batch):
        assert tuple(out["fields"][-1].shape[2:]) == (16, 16, 16) == tuple(out["warped"][-1].shape[2:])
        assert tuple(batch["moving_labels"].shape) == (1, 2, 16, 16, 16)
        return toy_loss(out, batch)

    trainer = Trainer(tmp_path / "run", make_spec((8, 8, 8)), make_config(2), prepared, {"device": "cpu"}, model_factory=lambda _s: Recording(), loss_factory=lambda _s: loss)
    status = trainer.run()
    assert status["state"] == "done", status.get("traceback")
    assert set(seen_shapes) == {(8, 8, 8)}
    assert trainer.resized

    # the upsampled field keeps its physical meaning: with corner-aligned grids one voxel of the 8-voxel
    # network grid spans (16 - 1) / (8 - 1) voxels of the 16-voxel prepared grid (about 2)
    constant = torch.zeros(1, 3, 8, 8, 8)
    constant[:, 0] = 1.0
    trainer.model = lambda m, f: {"fields": [constant], "warped": [m], "steps": 1}
    batch = trainer.data.load_batch([trainer.train_pairs[0]])
    out = trainer._forward(batch)
    assert torch.allclose(out["fields"][-1][:, 0], torch.full((1, 16, 16, 16), 15 / 7))
    assert torch.allclose(out["fields"][-1][:, 1:], torch.zeros(1, 2, 16, 16, 16))
    expected = warp(batch["moving"], out["fields"][-1])
    assert torch.equal(out["warped"][-1], expected)


def test_validation_without_labels_tracks_the_loss(tmp_path: Path):
    prepared = make_prepared(tmp_path / "prepared", labels=False)
    status = trainer_for(tmp_path / "run", prepared, make_config(4)).run()
    assert status["state"] == "done" and status["val_dice"] is None
    assert status["best"]["metric"] == "loss" and math.isfinite(status["best"]["value"])


def test_a_second_fresh_run_into_a_used_folder_is_refused(tmp_path: Path, prepared: Path):
    run = tmp_path / "run"
    trainer_for(run, prepared, make_config(2)).run()
    status = trainer_for(run, prepared, make_config(2)).run()
    assert status["state"] == "error" and status["kind"] == "checkpoint" and "already has checkpoints" in status["message"]


def test_status_is_readable_while_training_runs(tmp_path: Path, prepared: Path):
    trainer = trainer_for(tmp_path / "run", prepared, make_config(20, validateEvery=100, checkpointEvery=100))
    trainer.start()
    seen = []
    while trainer.alive:
        seen.append(trainer.status())
        time.sleep(0.01)
    final = trainer.wait(1)
    assert final["state"] == "done"
    assert any(s["state"] == "running" for s in seen)
    assert all(json.dumps(s) for s in seen)
    running = [s for s in seen if s["step"] > 2]
    if running:
        assert running[-1]["it_s"] > 0 and running[-1]["eta_s"] is not None
    assert threading.active_count() >= 1


def test_asking_for_cuda_without_a_gpu_is_a_config_error(tmp_path: Path, prepared: Path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    status = trainer_for(tmp_path / "run", prepared, make_config(2), device="cuda").run()
    assert status["state"] == "error" and status["kind"] == "config" and "no CUDA GPU" in status["message"]


def test_amp_on_a_cpu_with_bf16_arithmetic_trains_in_bf16_autocast(tmp_path: Path, prepared: Path, monkeypatch):
    # autocast runs on any CPU (slowly without the instructions), so the path is tested everywhere
    monkeypatch.setattr("llmed.train.cpu_has_bf16", lambda: True)
    status = trainer_for(tmp_path / "bf16", prepared, make_config(4, amp=True)).run()
    assert status["state"] == "done", status.get("traceback")
    assert status["device"] == "cpu" and status["amp"] == "bfloat16"
    assert all(math.isfinite(v) for v in step_losses(tmp_path / "bf16").values())
    # amp off, or ampDtype fp32, keeps float32
    assert trainer_for(tmp_path / "off", prepared, make_config(2, amp=False)).run()["amp"] is None
    assert trainer_for(tmp_path / "fp32", prepared, make_config(2, amp=True), ampDtype="fp32").run()["amp"] is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("amp_dtype, expected", [("bf16", "bfloat16"), ("fp16", "float16")])
def test_cuda_amp_trains_and_resumes(tmp_path: Path, prepared: Path, amp_dtype: str, expected: str):
    config = make_config(6, validateEvery=3, checkpointEvery=3)
    status = trainer_for(tmp_path / "straight", prepared, config, device="cuda", ampDtype=amp_dtype).run()
    assert status["state"] == "done", status.get("traceback")
    assert status["device"].startswith("cuda") and status["amp"] == expected
    losses = step_losses(tmp_path / "straight")
    assert all(math.isfinite(v) for v in losses.values())
    if amp_dtype == "fp16":  # the GradScaler state is part of the checkpoint
        from llmed.checkpoint import read_optimizer_state

        blob = read_optimizer_state(tmp_path / "straight" / "checkpoints" / "last.optim.safetensors", "cpu")
        assert blob["scaler"] and blob["scaler"]["scale"] > 0
    run = tmp_path / "run"
    first = trainer_for(run, prepared, make_config(6, validateEvery=3, checkpointEvery=3, timeBudgetMinutes=1e-9), device="cuda", ampDtype=amp_dtype).run()
    assert first["state"] == "stopped" and first["step"] == 1
    resumed = trainer_for(run, prepared, config, device="cuda", ampDtype=amp_dtype, resume=True).run()
    assert resumed["state"] == "done" and resumed["step"] == 6
    again = step_losses(run)
    assert max(abs(again[s] - losses[s]) for s in range(2, 7)) < 1e-3  # CUDA kernels need not be bitwise deterministic


def test_one_hot_labels_are_built_only_for_losses_that_use_them(tmp_path: Path, prepared: Path):
    seen_keys = []

    def image_only_loss(out, batch):
        seen_keys.append(sorted(batch))
        return toy_loss(out, {k: v for k, v in batch.items() if k in ("moving", "fixed")})

    image_only_loss.uses_labels = False  # what a loss term declares (llmed.losses terms carry it)
    status = trainer_for(tmp_path / "run", prepared, make_config(2), loss=image_only_loss).run()
    assert status["state"] == "done" and status["val_dice"] is not None  # validation still scores Dice
    assert seen_keys and all(keys == ["fixed", "moving"] for keys in seen_keys)

    from llmed.train import loss_uses_labels

    assert loss_uses_labels(toy_loss) is True  # undeclared: assume it does
    assert loss_uses_labels(nn.Module()) is True


def test_the_training_keys_are_the_schemas_and_a_config_without_them_is_refused():
    # The experiment schema (packages/core/src/config.ts, train) is where the keys and their defaults live;
    # the trainer reads them as the TypeScript side filled them, with no defaults of its own.
    config_ts = (Path(__file__).resolve().parents[3] / "packages" / "core" / "src" / "config.ts").read_text()
    block = config_ts[config_ts.index("    train: {") : config_ts.index("        cascade: {")]
    keys = re.findall(r"^ {8}(\w+): \{", block, flags=re.M)
    assert tuple(keys) == TRAIN_KEYS
    full = make_config(3)
    assert train_section(full) == full["train"]
    partial = {"train": {k: v for k, v in full["train"].items() if k not in ("seed", "amp")}}
    with pytest.raises(TrainingConfigError, match=r"train\.amp, train\.seed missing"):
        train_section(partial)


def test_set_threads_is_taken_up_by_the_training_thread_before_a_step(tmp_path: Path, prepared: Path):
    """The demo gives the registration model the second core when the report generator beside it is done."""

    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2  # any count but the current one, so that the change shows as an event
    run = tmp_path / "run"
    trainer = running_slow_trainer(run, prepared)
    deadline = time.time() + 30
    trainer.set_threads(wanted)
    while not [e for e in events(run) if e["event"] == "threads"] and time.time() < deadline:
        time.sleep(0.02)
    trainer.set_threads(before)  # leave the process as it was
    time.sleep(0.3)
    trainer.stop()
    assert trainer.wait(30)["state"] == "stopped"
    changes = [e for e in events(run) if e["event"] == "threads"]
    assert changes and changes[0]["threads"] == wanted and changes[0]["step"] >= 2
    with pytest.raises(ValueError):
        trainer.set_threads(0)
