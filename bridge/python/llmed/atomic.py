"""Atomic file writes and folder publishing: the one implementation of each on the Python side.

Its TypeScript twin is ``packages/core/src/atomic.ts`` (``writeFileAtomic``, ``publishFolder``,
``recoverFolder``); both use the same names on disk, so either language can clean up after the other.

*Files* are written to ``<file>.tmp-<pid>``, flushed to disk, then moved over ``<file>`` with
``os.replace``: a reader sees the old file or the new one, never half of one.

*Folders* are built completely under a staging name (``<target>.tmp-<pid>``, from :func:`staging_folder`)
and published with :func:`publish_folder`. An existing target is never deleted before its replacement is
in place: it is renamed aside to ``<target>.old-<pid>``, the new folder is renamed into place, and only then
is the aside folder removed. A crash between the two renames leaves the old folder under its aside name;
:func:`recover_folder`, called before the next write of that target, puts it back (or drops it when a newer
target already exists) and removes staging folders of processes that are gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


# ------------------------------------------------------------------------------------------------ files


def _write_temporary(path: str, write: Callable[[str], None]) -> str:
    """``write`` to ``<path>.tmp-<pid>`` and flush it to disk; returns the temporary name."""
    tmp = f"{path}.tmp-{os.getpid()}"
    write(tmp)
    with open(tmp, "rb+") as f:  # the bytes must be on disk before a name points at them
        os.fsync(f.fileno())
    return tmp


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Run ``write(tmp_path)``, then ``os.replace(tmp_path, path)``; on any failure remove the temporary
    file and re-raise, leaving ``path`` as it was."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        _write_temporary(path, write)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_write_group(writes: list[tuple[str | os.PathLike[str], Callable[[str], None]]]) -> None:
    """Write several files as one unit: every file goes to its temporary name first; only when all are
    complete are they renamed, in order (put the commit record last). A failure while writing renames
    nothing, so the previous files stay as they were."""
    staged: list[tuple[str, str]] = []
    try:
        for path, write in writes:
            path = os.fspath(path)
            staged.append((f"{path}.tmp-{os.getpid()}", path))
            _write_temporary(path, write)
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            _remove_quietly(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike[str], value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def remove_stale_temporaries(folder: str | os.PathLike[str], stem: str = "") -> list[str]:
    """Remove ``<stem>*.tmp-<pid>`` files and folders in ``folder`` whose writer (process ``pid``) is gone:
    what a kill leaves behind. Returns the names removed."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    pattern = re.compile(re.escape(stem) + r".*\.tmp-(\d+)$")
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            _remove_quietly(entry.path)
        removed.append(entry.name)
    return removed


# ---------------------------------------------------------------------------------------------- folders


def staging_folder(target: str | os.PathLike[str]) -> Path:
    """The staging name of ``target`` for this process (``<target>.tmp-<pid>``, beside it: same file system)."""
    target = Path(target)
    return target.with_name(f"{target.name}.tmp-{os.getpid()}")


def _aside(target: Path) -> Path:
    return target.with_name(f"{target.name}.old-{os.getpid()}")


def recover_folder(target: str | os.PathLike[str]) -> list[str]:
    """Undo what a crash in :func:`publish_folder` (or while staging) left beside ``target``.

    An aside folder ``<target>.old-<pid>`` of a process that is gone is the previous target when the target
    itself is missing (the crash fell between the two renames): it is renamed back. When the target exists,
    the aside folder is an already replaced version and is removed. Staging folders of dead processes are
    removed. Call it while holding the target's write lock, if it has one. Returns what was done, one line each.
    """
    target = Path(target)
    done: list[str] = []
    try:
        entries = list(os.scandir(target.parent))
    except FileNotFoundError:
        return done
    pattern = re.compile(re.escape(target.name) + r"\.(old|tmp)-(\d+)$")
    # newest pid last, so that when several asides exist the most recent one is restored
    found = sorted(((m.group(1), int(m.group(2)), e) for e in entries if (m := pattern.fullmatch(e.name))), key=lambda x: x[1])
    for what, pid, entry in found:
        if pid == os.getpid() or _pid_alive(pid):
            continue
        if what == "old" and not target.exists():
            os.replace(entry.path, target)
            done.append(f"restored {target.name} from {entry.name}")
        else:
            shutil.rmtree(entry.path, ignore_errors=True)
            done.append(f"removed {entry.name}")
    return done


def publish_folder(staging: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Move the complete folder ``staging`` to ``target``. An existing ``target`` is renamed aside first and
    removed only once the new folder is in place; if the second rename fails the old one is put back."""
    staging, target = Path(staging), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists() or target.is_symlink():
        old = _aside(target)
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
