"""Prepared-data access and checkpoint files: memmaps, sampler, one-hot, atomic writes, consistency."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import llmed.checkpoint as ckpt
from llmed.checkpoint import CheckpointError, base_fingerprint, capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from llmed.data import DataError, PairSampler, PreparedDataset, one_hot, open_volume

try:
    from test_train_engine import make_prepared, write_volume
except ImportError:  # tests/ imported as a package
    from tests.test_train_engine import make_prepared, write_volume


# ---- data -------------------------------------------------------------------------------------------


def test_volumes_are_memory_mapped_in_torch_order(tmp_path: Path):
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # (K, J, I): nx=4, ny=3, nz=2
    write_volume(tmp_path, "v", data)
    vol = open_volume(tmp_path, "v")
    assert isinstance(vol, np.memmap) and vol.shape == (1, 2, 3, 4) and not vol.flags.writeable
    assert vol[0, 1, 2, 3] == data[1, 2, 3]  # voxel (i=3, j=2, k=1)
    # the i axis is fastest in the file
    raw = np.frombuffer((tmp_path / "v.f32").read_bytes(), dtype="<f4")
    assert raw[1] == data[0, 0, 1]


def test_damaged_or_missing_volumes_are_data_errors(tmp_path: Path):
    write_volume(tmp_path, "v", np.zeros((2, 2, 2), np.float32))
    (tmp_path / "v.f32").write_bytes(b"\0" * 12)
    with pytest.raises(DataError, match="needs 32"):
        open_volume(tmp_path, "v")
    with pytest.raises(DataError, match="no header") as err:
        open_volume(tmp_path, "absent")
    assert err.value.kind == "data" and "prepare" in err.value.hint
    with pytest.raises(DataError, match="does not exist"):
        PreparedDataset(tmp_path / "nowhere")


def test_batches_have_channels_and_one_hot_labels(tmp_path: Path):
    ds = PreparedDataset(make_prepared(tmp_path / "p"))
    batch = ds.load_batch(ds.splits["train"][:2])
    assert batch["moving"].shape == (2, 1, 8, 12, 16) and batch["moving"].dtype == torch.float32
    assert batch["moving_labels"].shape == (2, 2, 8, 12, 16)
    lm = batch["moving_label_map"]
    assert torch.equal(batch["moving_labels"][:, 0:1], (lm == 1).float())
    assert torch.equal(batch["moving_labels"][:, 1:2], (lm == 2).float())


def test_one_hot_ignores_values_not_listed():
    label_map = torch.tensor([0, 1, 5, 2, 1], dtype=torch.int32).view(1, 1, 1, 1, 5)
    oh = one_hot(label_map, [1, 2])
    assert oh.shape == (1, 2, 1, 1, 5)
    assert oh[0, :, 0, 0].T.tolist() == [[0, 0], [1, 0], [0, 0], [0, 1], [1, 0]]


def test_pair_sampler_is_a_function_of_seed_and_step():
    a, b = PairSampler(7, seed=11), PairSampler(7, seed=11)
    draws = [a.index(s) for s in range(21)]
    assert sorted(draws[:7]) == list(range(7)) and sorted(draws[7:14]) == list(range(7))  # each pair once per epoch
    assert draws[:7] != draws[7:14]
    assert [b.index(s) for s in (20, 3, 15, 0)] == [draws[20], draws[3], draws[15], draws[0]]  # random access
    assert [PairSampler(7, seed=12).index(s) for s in range(7)] != draws[:7]
    assert a.batch(2, 3) == draws[6:9]


# ---- checkpoints ------------------------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.trained = nn.Linear(3, 3)
        self.frozen = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)
        self.shared = self.trained  # a config's "share": one module under two names
        self.register_buffer("pos", torch.randn(4))
        self.register_buffer("grid_cache", torch.zeros(2), persistent=False)


def saved(tmp_path: Path, net: Net, step: int, optimizer=None):
    return save_checkpoint(
        tmp_path,
        "last",
        model=net,
        base_names=["frozen.weight", "frozen.bias"],
        base_sha256=base_fingerprint(net, ["frozen.weight", "frozen.bias"]),
        step=step,
        state={"phase": 1},
        optimizer=optimizer,
    )


def test_checkpoint_round_trip_stores_trainable_and_buffers_only(tmp_path: Path):
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.Adam(net.trained.parameters(), lr=0.1)
    net.trained(torch.randn(2, 3)).sum().backward()
    opt.step()
    saved(tmp_path, net, 7, opt)
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "last.safetensors"))
    assert set(stored) == {"trained.weight", "trained.bias", "pos"}

    torch.manual_seed(0)
    other = Net()
    other_opt = torch.optim.Adam(other.trained.parameters(), lr=0.1)
    with torch.no_grad():
        other.trained.weight.zero_()
        other.pos.zero_()
    record = load_checkpoint(tmp_path, "last", model=other, base_names=["frozen.weight", "frozen.bias"], base_sha256=base_fingerprint(other, ["frozen.weight", "frozen.bias"]), optimizer=other_opt)
    assert record["step"] == 7 and record["phase"] == 1
    assert torch.equal(other.trained.weight, net.trained.weight) and torch.equal(other.shared.weight, net.trained.weight)
    assert torch.equal(other.pos, net.pos)
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


BASE = ["frozen.weight", "frozen.bias"]


@pytest.mark.parametrize("failing", ["tensors", "optimizer", "record"])
def test_an_exception_during_a_write_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch, failing: str):
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.Adam(net.trained.parameters(), lr=0.1)
    saved(tmp_path, net, 1, opt)
    before = net.trained.weight.detach().clone()
    with torch.no_grad():
        net.trained.weight.add_(1.0)

    import safetensors.torch as st

    def interrupted(real):
        def write(obj, target, *args, **kwargs):
            real(obj, target, *args, **kwargs)  # the bytes are written ...
            raise KeyboardInterrupt("Ctrl-C during the write")  # ... and the process is interrupted

        return write

    if failing == "tensors":
        monkeypatch.setattr(st, "save_file", interrupted(st.save_file))
    elif failing == "optimizer":
        monkeypatch.setattr(ckpt, "_save_optimizer_file", interrupted(ckpt._save_optimizer_file))
    else:
        monkeypatch.setattr(ckpt, "capture_rng_state", lambda: {"bad": object()})  # not JSON-serialisable
    with pytest.raises((KeyboardInterrupt, TypeError)):
        saved(tmp_path, net, 2, opt)
    monkeypatch.undo()

    assert not list(tmp_path.glob("*.tmp-*"))
    torch.manual_seed(0)
    fresh = Net()
    fresh_opt = torch.optim.Adam(fresh.trained.parameters(), lr=0.1)
    record = load_checkpoint(tmp_path, "last", model=fresh, base_names=BASE, optimizer=fresh_opt)
    assert record["step"] == 1 and torch.equal(fresh.trained.weight, before)


def test_a_kill_between_the_renames_is_detected_not_mixed(tmp_path: Path, monkeypatch):
    net = Net()
    saved(tmp_path, net, 1)
    real_replace = ckpt.os.replace
    calls = {"n": 0}

    def replace_then_die(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:  # tensors renamed, record not yet
            raise SystemExit("killed")
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", replace_then_die)
    with pytest.raises(SystemExit):
        saved(tmp_path, net, 2)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="killed between"):
        load_checkpoint(tmp_path, "last", model=Net(), base_names=BASE)


def test_checkpoints_refuse_other_base_weights_and_other_models(tmp_path: Path):
    torch.manual_seed(0)
    net = Net()
    saved(tmp_path, net, 1)
    torch.manual_seed(1)
    other = Net()  # different frozen "LLM" weights
    with pytest.raises(CheckpointError, match="frozen base weights"):
        load_checkpoint(tmp_path, "last", model=other, base_names=["frozen.weight", "frozen.bias"], base_sha256=base_fingerprint(other, ["frozen.weight", "frozen.bias"]))

    class Bigger(Net):
        def __init__(self):
            super().__init__()
            self.extra = nn.Linear(2, 2)

    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_checkpoint(tmp_path, "last", model=Bigger(), base_names=["frozen.weight", "frozen.bias"])
    with pytest.raises(CheckpointError, match="no 'best' checkpoint"):
        load_checkpoint(tmp_path, "best", model=net, base_names=[])
    with pytest.raises(CheckpointError, match="no checkpoints folder"):
        load_checkpoint(tmp_path / "absent", "last", model=net, base_names=[])


def test_rng_states_survive_json(tmp_path: Path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = json.loads(json.dumps(capture_rng_state()))
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_bf16_base_weights_can_be_fingerprinted():
    layer = nn.Linear(4, 4).to(torch.bfloat16)
    assert len(base_fingerprint(layer, ["weight"])) == 64
    assert ckpt.checkpoint_tensor_names(layer, ["weight"]) == ["bias"]
