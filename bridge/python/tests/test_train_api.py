"""The bridge API (api.py) and the trainer on the real assembled model (llmed.assemble + plugins).

test_train_engine.py pins the engine down on a toy network; here the same guarantees are checked on a
tiny LLaMA-Reg / cascade model built by build_model from a ModelSpec: resume equality, cascade phases
through RegistrationModel.freeze_for_step, half-resolution training, and the structured results Node
reads.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fixtures import make_spec, registered_plugins
from llmed import api
from llmed.checkpoint import read_checkpoint_record
from llmed.train import Trainer, load_run_model

PLUGINS = registered_plugins(Path(__file__).resolve().parents[3] / "plugins")

try:
    from test_train_engine import events, make_config, make_prepared, step_losses
except ImportError:  # tests/ imported as a package
    from tests.test_train_engine import events, make_config, make_prepared, step_losses

SPATIAL = (16, 16, 16)
CHANNELS = (2, 4, 4, 8, 8)


@pytest.fixture(scope="module")
def prepared16(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prep16") / "prepared", shape_ijk=SPATIAL)


@pytest.fixture()
def llama_spec(plugins_dir, tiny_checkpoint):
    return make_spec(
        plugins_dir, tiny_checkpoint("llama3"), spatial=SPATIAL, channels=CHANNELS, base=16, losses=(("mse", 1.0, {"scaleWeights": [0.25, 0.5, 1]}), ("diffusion", 0.04, {}), ("dice-loss", 0.1, {}))
    )


def write_json(path: Path, value) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def test_real_model_resume_is_identical_and_base_weights_are_not_saved(tmp_path: Path, llama_spec, prepared16: Path):
    config = make_config(4, lr=1e-3, validateEvery=2, checkpointEvery=2)
    straight = tmp_path / "straight"
    status = Trainer(straight, llama_spec, config, prepared16, {"device": "cpu"}).run()
    assert status["state"] == "done", status.get("traceback")
    assert status["best"]["metric"] == "dice"

    run = tmp_path / "run"
    trainer = Trainer(run, llama_spec, make_config(4, lr=1e-3, validateEvery=2, checkpointEvery=2, timeBudgetMinutes=1e-9), prepared16, {"device": "cpu"})
    first = trainer.run()  # the budget is spent after the first step
    assert first["state"] == "stopped" and first["reason"] == "time-budget" and first["step"] == 1
    resumed = Trainer(run, llama_spec, config, prepared16, {"device": "cpu", "resume": True}).run()
    assert resumed["state"] == "done" and resumed["start_step"] == 1
    a, b = step_losses(straight), step_losses(run)
    assert [b[s] for s in range(1, 5)] == [a[s] for s in range(1, 5)]

    stored = load_file(str(run / "checkpoints" / "last.safetensors"))
    llm_names = [n for n in stored if n.startswith("llm.")]
    assert not llm_names, f"frozen LLM weights were saved again: {llm_names[:3]}"
    record = read_checkpoint_record(run / "checkpoints", "last")
    assert record["baseWeights"]["count"] > 0

    # export-style reload: rebuilds from the run folder and loads best
    model, best = load_run_model(straight, "best", plugins=PLUGINS)
    assert best["tag"] == "best" and not model.training
    with torch.no_grad():
        field = model.forward_field(torch.zeros(1, 1, 16, 16, 16), torch.zeros(1, 1, 16, 16, 16))
    assert field.shape == (1, 3, 16, 16, 16)


def test_real_cascade_trains_phase_by_phase(tmp_path: Path, plugins_dir, tiny_checkpoint, prepared16: Path):
    spec = make_spec(plugins_dir, tiny_checkpoint("llama3"), spatial=SPATIAL, channels=CHANNELS, base=16, decoder="cascade", steps=2)
    config = make_config(2, lr=1e-3, validateEvery=100, checkpointEvery=100, cascade={"schedule": "step-by-step", "iterations": [1, 1]})
    run = tmp_path / "run"
    status = Trainer(run, spec, config, prepared16, {"device": "cpu"}).run()
    assert status["state"] == "done", status.get("traceback")
    phases = [(e["phase"], e["trainable"]) for e in events(run) if e["event"] == "phase"]
    assert [p for p, _ in phases] == [1, 2]
    assert phases[1][1] != phases[0][1]  # phase 2 trains a different parameter set
    assert [(e["step"], e["phase"]) for e in events(run) if e["event"] == "checkpoint" and e["which"] == "last"] == [(1, 1), (2, 2)]
    stored = load_file(str(run / "checkpoints" / "last.safetensors"))
    assert any(n.startswith("encoder.") for n in stored)  # trained in phase 1, frozen in 2, still stored
    assert any(n.startswith("branches.1.") for n in stored)


def test_half_resolution_training_on_the_real_model(tmp_path: Path, plugins_dir, tiny_checkpoint):
    prepared = make_prepared(tmp_path / "prepared32", shape_ijk=(32, 32, 32))
    spec = make_spec(plugins_dir, tiny_checkpoint("llama3"), spatial=SPATIAL, channels=CHANNELS, base=16, losses=(("dice-loss", 1.0, {}), ("diffusion", 0.1, {})))
    status = Trainer(tmp_path / "run", spec, make_config(1, lr=1e-3), prepared, {"device": "cpu", "valPairs": 1}).run()
    assert status["state"] == "done", status.get("traceback")
    start = next(e for e in events(tmp_path / "run") if e["event"] == "start")
    assert start["resized"] is True
    assert status["val_dice"] is not None


def test_api_results_are_structured_and_never_raise(tmp_path: Path, llama_spec, prepared16: Path):
    env = api.check_environment()
    assert env["ok"] and env["versions"]["torch"].startswith("2.13.0") and env["device"] in ("cpu", "cuda")
    assert json.loads(api.invoke("no_such_thing"))["ok"] is False
    assert json.loads(api.invoke("wait", "[1, 2, 3]"))["kind"] == "bridge"  # wrong arguments: still a result

    spec_path = write_json(tmp_path / "spec.json", llama_spec)
    config_path = write_json(tmp_path / "config.json", make_config(2, lr=1e-3, validateEvery=2, checkpointEvery=2))

    described = json.loads(api.invoke("describe_model", json.dumps([spec_path, None, PLUGINS])))
    assert described["ok"] and described["parameters"]["frozen"] > 0 and "encoder" in described["parts"]

    missing = api.start_training(str(tmp_path / "r0"), str(tmp_path / "absent.json"), config_path, str(prepared16))
    assert missing["ok"] is False and missing["kind"] == "config" and "does not exist" in missing["message"]

    started = json.loads(api.invoke("start_training", json.dumps([str(tmp_path / "r1"), spec_path, config_path, str(prepared16), json.dumps({"device": "cpu", "plugins": PLUGINS})])))
    assert started["ok"], started
    again = api.start_training(str(tmp_path / "r2"), spec_path, config_path, str(prepared16), "{}")
    assert again["ok"] is False and "already going on" in again["message"]
    deadline = time.time() + 120
    while json.loads(api.invoke("status"))["state"] not in ("done", "stopped", "error") and time.time() < deadline:
        time.sleep(0.1)
    final = api.wait(5)
    assert final["ok"] and final["state"] == "done" and final["step"] == 2

    # resume of a folder without checkpoints: a checkpoint error, delivered through status
    assert api.start_training(str(tmp_path / "r3"), spec_path, config_path, str(prepared16), json.dumps({"resume": True, "plugins": PLUGINS}))["ok"]
    failed = api.wait(60)
    assert failed["state"] == "error" and failed["kind"] == "checkpoint" and "Traceback" in failed["traceback"]


def test_status_json_is_strict_even_with_non_finite_numbers():
    text = api.invoke("add_import_paths", json.dumps([[]]))
    assert json.loads(text)["ok"]
    assert json.loads(json.dumps(api.json_safe({"x": float("nan"), "y": [float("inf"), 1.0]}))) == {"x": None, "y": [None, 1.0]}
