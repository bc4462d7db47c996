"""Run folders are data, never code: crafted checkpoints, records and spec.json files.

Each test crafts one hostile or broken run folder (the generator is here, nothing is copied from a corpus)
and checks that loading it runs nothing it names, hangs on nothing, and fails with one typed error that
names the file:

- a pickle in a (legacy) ``last.optim.pt`` whose unpickling would run code;
- a checkpoint record naming files outside ``checkpoints/``;
- damaged safetensors files (tensors and optimizer state);
- a spec.json whose python roots point at a folder of hostile modules, or that names an unknown plugin;
- temporary checkpoint files a kill left behind (cleaned at the next start);
- a checkpoint whose step is beyond the run's iterations.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from test_train_engine import make_config, make_prepared, trainer_for

from fixtures import make_spec, registered_plugins
from llmed import api
from llmed.assemble import SpecError, build_model
from llmed.checkpoint import CheckpointError, base_fingerprint, load_checkpoint, read_optimizer_state, save_checkpoint
from llmed.train import load_run_model

PLUGINS_DIR = Path(__file__).resolve().parents[3] / "plugins"
PLUGINS = registered_plugins(PLUGINS_DIR)
BASE = ["frozen.weight"]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.trained = nn.Linear(3, 3)
        self.frozen = nn.Linear(3, 3, bias=False)
        self.frozen.requires_grad_(False)


def trained_checkpoint(folder: Path, step: int = 3) -> tuple[Net, torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.Adam(net.trained.parameters(), lr=0.1)
    net.trained(torch.randn(2, 3)).sum().backward()
    opt.step()
    save_checkpoint(folder, "last", model=net, base_names=BASE, base_sha256=base_fingerprint(net, BASE), step=step, state={"phase": 1}, optimizer=opt)
    return net, opt


class RunsCode:
    """Unpickling this runs ``os.system`` (what a crafted optimizer file would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_optimizer_state_is_safetensors_and_json_and_round_trips(tmp_path: Path):
    net, opt = trained_checkpoint(tmp_path)
    record = json.loads((tmp_path / "last.json").read_text())
    assert record["optimizer"] == "last.optim.safetensors" and not list(tmp_path.glob("*.pt"))
    assert (tmp_path / "last.optim.safetensors").read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle
    blob = read_optimizer_state(tmp_path / "last.optim.safetensors", "cpu")
    assert blob["step"] == 3 and torch.equal(blob["optimizer"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert blob["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)  # tuples stay tuples
    other = Net()
    other_opt = torch.optim.Adam(other.trained.parameters(), lr=0.1)
    load_checkpoint(tmp_path, "last", model=other, base_names=BASE, optimizer=other_opt)
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg_sq"], opt.state_dict()["state"][0]["exp_avg_sq"])


def test_a_pickle_that_runs_code_in_a_legacy_optimizer_file_is_refused_without_running(tmp_path: Path):
    trained_checkpoint(tmp_path)
    marker = tmp_path / "pwned"
    # A run folder of the older layout: its record names last.optim.pt, here a hostile pickle.
    with open(tmp_path / "last.optim.pt", "wb") as f:
        pickle.dump({"step": 3, "optimizer": RunsCode(marker), "scaler": None}, f)
    record = json.loads((tmp_path / "last.json").read_text())
    record["optimizer"] = "last.optim.pt"
    (tmp_path / "last.json").write_text(json.dumps(record))
    net = Net()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path, "last", model=net, base_names=BASE, optimizer=torch.optim.Adam(net.trained.parameters()))
    assert not marker.exists(), "loading the checkpoint ran code from it"
    assert err.value.where == str(tmp_path / "last.optim.pt") and "last.optim.pt" in str(err.value)


def test_a_legacy_optimizer_file_written_by_torch_save_still_loads(tmp_path: Path):
    net, opt = trained_checkpoint(tmp_path)
    torch.save({"step": 3, "optimizer": opt.state_dict(), "scaler": None}, tmp_path / "last.optim.pt")
    record = json.loads((tmp_path / "last.json").read_text())
    record["optimizer"] = "last.optim.pt"
    (tmp_path / "last.json").write_text(json.dumps(record))
    (tmp_path / "last.optim.safetensors").unlink()
    other = Net()
    other_opt = torch.optim.Adam(other.trained.parameters(), lr=0.1)
    load_checkpoint(tmp_path, "last", model=other, base_names=BASE, optimizer=other_opt)
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


@pytest.mark.parametrize("key, value", [("tensors", "/dev/zero"), ("tensors", "../../spec.json"), ("optimizer", "/etc/passwd"), ("step", "3")])
def test_a_record_naming_files_outside_checkpoints_is_refused(tmp_path: Path, key: str, value):
    trained_checkpoint(tmp_path)
    record = json.loads((tmp_path / "last.json").read_text())
    record[key] = value
    (tmp_path / "last.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=key) as err:
        load_checkpoint(tmp_path, "last", model=Net(), base_names=BASE)
    assert err.value.where == str(tmp_path / "last.json")


@pytest.mark.parametrize("victim", ["last.safetensors", "last.optim.safetensors"])
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_safetensors_files_are_checkpoint_errors_naming_the_file(tmp_path: Path, victim: str, damage: str):
    trained_checkpoint(tmp_path)
    path = tmp_path / victim
    data = path.read_bytes()
    path.write_bytes({"garbage": b"\x00not a safetensors file" * 10, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    net = Net()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path, "last", model=net, base_names=BASE, optimizer=torch.optim.Adam(net.trained.parameters()))
    assert err.value.where == str(path) and victim in str(err.value)


def test_an_optimizer_structure_with_unknown_entries_is_refused(tmp_path: Path):
    from safetensors.torch import save_file

    trained_checkpoint(tmp_path)
    save_file({}, str(tmp_path / "last.optim.safetensors"), metadata={"llmed.step": "3", "llmed.optimizer": json.dumps({"$dict": [["step", 3], ["optimizer", {"$eval": "os.system('x')"}]]})})
    net = Net()
    with pytest.raises(CheckpointError, match="does not write") as err:
        load_checkpoint(tmp_path, "last", model=net, base_names=BASE, optimizer=torch.optim.Adam(net.trained.parameters()))
    assert err.value.where == str(tmp_path / "last.optim.safetensors")


# ---- spec.json: plugin code comes from the registered plugins, by id --------------------------------------


def hostile_plugin_folder(folder: Path, marker: Path, module: str) -> Path:
    """A python folder whose module, once imported, writes ``marker`` (and would build anything)."""
    (folder / module).mkdir(parents=True)
    (folder / module / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\ndef build(options, inputs):\n    raise SystemExit('ran')\n")
    return folder


def crafted_run(tmp_path: Path, tiny_checkpoint, mutate) -> tuple[Path, Path, dict]:
    """A real run folder (1 training step of a tiny LLaMA-Reg) whose spec.json is then rewritten by ``mutate``."""
    from test_export import CHANNELS, SPATIAL, run_config

    prepared = make_prepared(tmp_path / "prepared", shape_ijk=SPATIAL)
    spec = make_spec(PLUGINS_DIR, tiny_checkpoint("llama3"), spatial=SPATIAL, channels=CHANNELS, base=16)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(run_config(1)))
    (run / "spec.json").write_text(json.dumps(spec))
    status = trainer_for_real(run, spec, prepared)
    assert status["state"] == "done", status.get("traceback")
    marker = tmp_path / "imported"
    evil = hostile_plugin_folder(tmp_path / "evil", marker, "llmed_dual_pyramid")
    crafted = json.loads((run / "spec.json").read_text())
    mutate(crafted, evil)
    (run / "spec.json").write_text(json.dumps(crafted))
    return run, marker, crafted


def trainer_for_real(run: Path, spec: dict, prepared: Path) -> dict:
    from test_export import run_config

    from llmed.train import Trainer

    return Trainer(run, spec, run_config(1), prepared, {"device": "cpu", "valPairs": 1, "plugins": PLUGINS}).run()


def test_a_spec_whose_python_roots_point_elsewhere_imports_nothing_from_there(tmp_path: Path, tiny_checkpoint):
    def point_at_evil(spec: dict, evil: Path) -> None:
        spec["encoder"]["python"] = {"root": str(evil), "module": "llmed_dual_pyramid", "factory": "build"}
        for node in spec["block"]:
            node["python"] = {"root": str(evil), "module": "llmed_dual_pyramid", "factory": "build"}

    run, marker, _ = crafted_run(tmp_path, tiny_checkpoint, point_at_evil)
    model, record = load_run_model(run, "last", plugins=PLUGINS)
    assert record["step"] == 1 and not marker.exists()
    assert str(tmp_path / "evil") not in os.sys.path
    # ... and the model is the registered plugins' (the hostile factory would have raised)
    assert type(model.encoder).__module__.startswith("llmed_dual_pyramid") and model.encoder.__class__.__module__ in os.sys.modules
    assert str(PLUGINS_DIR / "dual-pyramid" / "python") in os.sys.modules[model.encoder.__class__.__module__.split(".")[0]].__file__


def test_a_spec_naming_an_unknown_plugin_is_refused_with_the_plugin_named(tmp_path: Path, tiny_checkpoint):
    def unknown(spec: dict, evil: Path) -> None:
        spec["block"][2]["id"] = "totally-not-evil"
        spec["block"][2]["python"] = {"root": str(evil), "module": "llmed_dual_pyramid", "factory": "build"}

    run, marker, _ = crafted_run(tmp_path, tiny_checkpoint, unknown)
    with pytest.raises(SpecError) as err:
        load_run_model(run, "last", plugins=PLUGINS)
    assert err.value.kind == "plugin" and "totally-not-evil" in str(err.value) and "model.block[2]" in str(err.value)
    assert not marker.exists()
    # through the bridge API, as `llmed export` calls it: a structured plugin error, nothing imported
    result = api.export_model(str(run), "last", None, None, None, PLUGINS)
    assert result["ok"] is False and result["kind"] == "plugin" and "totally-not-evil" in result["message"]
    assert not marker.exists() and not (run / "export").exists()
    # without the table, a run folder is never built from its own paths
    with pytest.raises(CheckpointError, match="never imported"):
        load_run_model(run, "last")
    refused = api.export_model(str(run), "last")
    assert refused["ok"] is False and "never imported" in refused["message"]


def test_build_model_with_a_table_ignores_the_nodes_own_entries(tmp_path: Path, tiny_checkpoint):
    marker = tmp_path / "imported"
    evil = hostile_plugin_folder(tmp_path / "evil2", marker, "llmed_tokens")
    spec = make_spec(PLUGINS_DIR, tiny_checkpoint("llama3"), spatial=(16, 16, 16), channels=(2, 4, 4, 8, 8), base=16)
    spec["tokens"]["python"] = {"root": str(evil), "module": "llmed_tokens", "factory": "build"}
    build_model(spec, plugins=PLUGINS)
    assert not marker.exists()
    spec["tokens"]["python"] = {"root": str(PLUGINS_DIR / "tokens" / "python"), "module": "os; import sys", "factory": "build"}
    with pytest.raises(SpecError, match="dotted module name"):
        build_model(spec)


# ---- what kills leave behind, and resumes that cannot continue ----------------------------------------------


def test_temporary_checkpoint_files_of_a_killed_writer_are_removed_at_the_next_start(tmp_path: Path):
    prepared = make_prepared(tmp_path / "prepared")
    run = tmp_path / "run"
    assert trainer_for(run, prepared, make_config(2)).run()["state"] == "done"
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    ckpt = run / "checkpoints"
    left = [ckpt / f"last.safetensors.tmp-{dead_pid}", ckpt / f"last.optim.safetensors.tmp-{dead_pid}", ckpt / f"last.json.tmp-{dead_pid}"]
    for f in left:
        f.write_bytes(b"\0" * 4096)
    alive = ckpt / f"best.safetensors.tmp-{os.getppid()}"  # a live writer's file is left alone
    alive.write_bytes(b"\0")
    status = trainer_for(run, prepared, make_config(4), resume=True).run()
    assert status["state"] == "done" and status["step"] == 4
    assert not any(f.exists() for f in left) and alive.exists()
    cleaned = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"cleaned"' in line]
    assert cleaned and sorted(cleaned[0]["files"]) == sorted(f.name for f in left)


def test_a_checkpoint_beyond_the_runs_iterations_is_a_checkpoint_error(tmp_path: Path):
    prepared = make_prepared(tmp_path / "prepared")
    run = tmp_path / "run"
    assert trainer_for(run, prepared, make_config(4)).run()["state"] == "done"
    status = trainer_for(run, prepared, make_config(2), resume=True).run()
    assert status["state"] == "error" and status["kind"] == "checkpoint"
    assert "step 4" in status["message"] and "2 iterations" in status["message"] and status["where"].endswith("last.json")


def test_an_export_never_replaces_a_folder_that_is_not_an_export(tmp_path: Path):
    from llmed.export import ExportError, check_output_folder

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(ExportError, match="not an llmed export") as err:
        check_output_folder(mine)
    assert err.value.kind == "usage" and err.value.where == str(mine)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="not a folder"):
        check_output_folder(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty")
    (tmp_path / "old-export").mkdir()
    (tmp_path / "old-export" / "manifest.json").write_text("{}")
    check_output_folder(tmp_path / "old-export")
    check_output_folder(tmp_path / "missing")
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_start_training_from_a_spec_file_needs_the_plugin_table(tmp_path: Path):
    (tmp_path / "spec.json").write_text(json.dumps({"version": 1}))
    (tmp_path / "config.json").write_text(json.dumps(make_config(1)))
    result = api.start_training(str(tmp_path / "run"), str(tmp_path / "spec.json"), str(tmp_path / "config.json"), str(tmp_path), "{}")
    assert result["ok"] is False and "never imported" in result["message"] and result["where"] == str(tmp_path / "spec.json")
    assert not (tmp_path / "run").exists()
