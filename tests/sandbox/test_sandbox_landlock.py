"""Landlock keeps a process to the folders it was given, where the kernel supports it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from redtier.sandbox import _landlock

pytestmark = pytest.mark.skipif(
    _landlock.abi_version() == 0,
    reason="this kernel has no Landlock (Linux >= 5.13 with landlock in the lsm= list)",
)


def attempt(action: str, path: Path) -> int:
    """Try ``action`` on ``path``; return 0 or the errno."""
    try:
        if action == "write":
            with open(path, "w") as handle:
                handle.write("x")
        else:
            with open(path) as handle:
                handle.read()
    except OSError as error:
        return error.errno or -1
    return 0


def restricted_results(
    read: list[Path], write: list[Path], attempts: list[tuple[str, Path]]
) -> list[int]:
    """Fork, restrict the child with Landlock and return the errno of each attempt there."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            _landlock.restrict([str(path) for path in read], [str(path) for path in write])
            os.write(
                write_end, json.dumps([attempt(action, path) for action, path in attempts]).encode()
            )
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        output = reader.read()
    os.waitpid(pid, 0)
    return json.loads(output)


def test_write_outside_allowed_folder_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    outside = tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (outside / "existing.txt").write_text("outside")
    results = restricted_results(
        read=[],
        write=[allowed],
        attempts=[
            ("write", allowed / "new.txt"),
            ("write", outside / "new.txt"),
            ("read", outside / "existing.txt"),
        ],
    )
    assert results == [0, 13, 13]
    assert (allowed / "new.txt").read_text() == "x"
    assert not (outside / "new.txt").exists()


def test_read_only_folder_not_writable(tmp_path: Path) -> None:
    readable = tmp_path / "readable"
    readable.mkdir()
    (readable / "data.txt").write_text("data")
    results = restricted_results(
        read=[readable],
        write=[],
        attempts=[("read", readable / "data.txt"), ("write", readable / "data.txt")],
    )
    assert results == [0, 13]
    assert (readable / "data.txt").read_text() == "data"


def test_handled_rights_grow_with_abi() -> None:
    assert _landlock.handled_fs_rights(1) == _landlock.FS_ABI1_ALL
    assert _landlock.handled_fs_rights(2) & _landlock.FS_REFER
    assert _landlock.handled_fs_rights(5) & _landlock.FS_IOCTL_DEV
