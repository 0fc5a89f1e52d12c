"""readable_by walks paths as the sandbox user would; python_binds names the interpreter's folders."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from redtier.sandbox import NOBODY_GID, NOBODY_UID, python_binds, readable_by
from redtier.sandbox._paths import is_within, outermost

root_only = pytest.mark.skipif(
    os.geteuid() != 0, reason="checks another uid's view, which needs root to set up"
)


@root_only
def test_system_python_readable_by_nobody() -> None:
    assert readable_by(
        NOBODY_UID,
        Path("/usr/bin/python3.11" if Path("/usr/bin/python3.11").exists() else "/usr/bin/env"),
    )


@root_only
def test_file_in_private_folder_unreadable(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    secret = private / "file.txt"
    secret.write_text("x")
    secret.chmod(0o644)
    assert not readable_by(NOBODY_UID, secret, gid=NOBODY_GID)


@root_only
def test_symlink_into_private_folder_unreadable(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "file.txt").write_text("x")
    public = Path(os.path.realpath("/tmp")) / f"redtier-test-link-{os.getpid()}"
    public.symlink_to(private / "file.txt")
    try:
        assert not readable_by(NOBODY_UID, public)
    finally:
        public.unlink()


@root_only
def test_write_needs_ownership_or_mode() -> None:
    folder = Path(tempfile.mkdtemp(prefix="redtier-test-write-"))
    try:
        folder.chmod(0o755)
        assert readable_by(NOBODY_UID, folder, gid=NOBODY_GID)
        assert not readable_by(NOBODY_UID, folder, gid=NOBODY_GID, write=True)
        os.chown(folder, NOBODY_UID, NOBODY_GID)
        assert readable_by(NOBODY_UID, folder, gid=NOBODY_GID, write=True)
    finally:
        folder.rmdir()


def test_current_user_uses_kernel_check(tmp_path: Path) -> None:
    assert readable_by(os.geteuid(), tmp_path, write=True)
    assert not readable_by(os.geteuid(), tmp_path / "absent")


def test_python_binds_hold_prefix() -> None:
    binds = python_binds()
    prefix = Path(sys.prefix).resolve()
    assert any(is_within(prefix, bind) for bind in binds) or is_within(prefix, Path("/usr"))
    assert not any(is_within(bind, Path("/usr")) for bind in binds)


def test_outermost_drops_nested_paths() -> None:
    paths = [Path("/a/b/c"), Path("/a"), Path("/x/y"), Path("/a")]
    assert outermost(paths) == [Path("/a"), Path("/x/y")]
