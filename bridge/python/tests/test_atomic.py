"""llmed.atomic: files replaced whole, folders published without ever deleting the old one first."""

from __future__ import annotations

import os

import pytest

from llmed import atomic

DEAD_PID = 2**22 + 1  # above Linux's largest pid: no such process


def _folder(path, text):
    path.mkdir(parents=True)
    (path / "v").write_text(text)
    return path


def test_atomic_write_replaces_whole_and_cleans_up_on_failure(tmp_path):
    f = tmp_path / "a.json"
    atomic.atomic_write_json(f, {"x": 1})
    assert f.read_text() == '{\n  "x": 1\n}\n'

    def broken(tmp):
        with open(tmp, "w") as out:
            out.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.atomic_write(f, broken)
    assert f.read_text() == '{\n  "x": 1\n}\n' and sorted(os.listdir(tmp_path)) == ["a.json"]


def test_publish_folder_keeps_the_old_folder_when_the_swap_fails(tmp_path, monkeypatch):
    target = _folder(tmp_path / "out", "old")
    staging = _folder(atomic.staging_folder(target), "new")
    real = os.replace
    calls = []

    def failing_second(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # old folder already aside, new one not yet in: the swap point
            raise OSError("disk full at the swap")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", failing_second)
    with pytest.raises(OSError, match="swap"):
        atomic.publish_folder(staging, target)
    monkeypatch.setattr(atomic.os, "replace", real)
    assert (target / "v").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == sorted(["out", staging.name])
    atomic.publish_folder(staging, target)
    assert (target / "v").read_text() == "new" and os.listdir(tmp_path) == ["out"]


def test_recover_folder_restores_an_aside_folder_left_by_a_crash(tmp_path):
    _folder(tmp_path / f"out.old-{DEAD_PID}", "old")
    _folder(tmp_path / f"out.tmp-{DEAD_PID}", "half")
    done = atomic.recover_folder(tmp_path / "out")
    assert sorted(done) == sorted([f"restored out from out.old-{DEAD_PID}", f"removed out.tmp-{DEAD_PID}"])
    assert (tmp_path / "out" / "v").read_text() == "old" and os.listdir(tmp_path) == ["out"]
    # with the target present, an aside copy is an older version: dropped
    _folder(tmp_path / f"out.old-{DEAD_PID}", "older")
    assert atomic.recover_folder(tmp_path / "out") == [f"removed out.old-{DEAD_PID}"]
    assert (tmp_path / "out" / "v").read_text() == "old"
