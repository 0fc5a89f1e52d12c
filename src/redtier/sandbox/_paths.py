"""Host paths that a sandboxed Python process needs, and checks that the sandbox user can reach them."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

NOBODY_UID = 65534
NOBODY_GID = 65534
"""The uid and gid of ``nobody`` on Debian and most Linux systems."""

MAX_SYMLINK_HOPS = 40
"""Symlinks followed while walking a path, as the kernel's own limit (ELOOP)."""

READ = os.R_OK
WRITE = os.W_OK
EXECUTE = os.X_OK

SOURCE_ROOT = Path(__file__).resolve().parents[2]
"""The folder that contains the ``redtier`` package (``src`` in a checkout, else site-packages)."""

INSIDE_SCRIPT = Path(__file__).resolve().with_name("_inside.py")
"""The bootstrap that applies limits inside the sandbox and then executes the payload."""


def python_binds() -> list[Path]:
    """Return the folders a process of this interpreter needs, without the ones under ``/usr``.

    These are ``sys.base_prefix`` (the standard library) and ``sys.prefix``
    (the virtual environment with its site-packages), resolved, with nested
    folders dropped. ``/usr`` is bound by every local backend anyway.
    """
    candidates = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()]
    return [path for path in outermost(candidates) if not is_within(path, Path("/usr"))]


def chown_tree(folder: Path, uid: int, gid: int) -> None:
    """Make ``folder`` and everything in it owned by ``uid``:``gid``, without following symlinks.

    ``os.fwalk`` opens each folder relative to its parent's descriptor and
    never follows links, so a sandboxed process that swaps a folder for a
    symlink meanwhile cannot redirect the ``chown`` outside ``folder``.
    """
    os.chown(folder, uid, gid, follow_symlinks=False)
    for _, folders, files, folder_fd in os.fwalk(folder, follow_symlinks=False):
        for name in [*folders, *files]:
            try:
                os.chown(name, uid, gid, dir_fd=folder_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue


def outermost(paths: Iterable[Path]) -> list[Path]:
    """Return ``paths`` without duplicates and without those inside another one, shortest first."""
    kept: list[Path] = []
    for path in sorted(set(paths), key=lambda p: (len(p.parts), str(p))):
        if not any(is_within(path, parent) for parent in kept):
            kept.append(path)
    return kept


def is_within(path: Path, parent: Path) -> bool:
    """Return whether ``path`` is ``parent`` or lies below it (lexically)."""
    return path == parent or parent in path.parents


def readable_by(uid: int, path: Path, *, gid: int | None = None, write: bool = False) -> bool:
    """Return whether ``uid`` (with only ``gid`` as its group) can reach and read ``path``.

    Every folder on the way, including the targets of symlinks, must grant
    search (x) permission, and the path itself read (and search for a
    folder, write when ``write``). For the current user the kernel
    decides, through ``os.access``. For another uid the mode bits are compared.

    NOTE: POSIX ACLs and capabilities are not taken into account for another
    uid, so a path readable only through an ACL is reported as unreadable.
    """
    wanted = READ | (WRITE if write else 0)
    if uid == os.geteuid():
        return os.access(path, wanted | (EXECUTE if path.is_dir() else 0))
    if uid == 0:
        return path.exists()
    groups = {gid if gid is not None else uid}
    final = _walk(uid, groups, Path(os.path.abspath(path)))
    if final is None:
        return False
    try:
        if stat.S_ISDIR(os.stat(final).st_mode):
            wanted |= EXECUTE
    except OSError:
        return False
    return _permits(uid, groups, final, wanted)


def _walk(uid: int, groups: set[int], path: Path) -> Path | None:
    """Follow ``path`` component by component. Return where it ends, or None where ``uid`` cannot pass."""
    current = Path("/")
    pending = list(path.parts[1:])
    hops = 0
    while pending:
        if not _permits(uid, groups, current, EXECUTE):
            return None
        name = pending.pop(0)
        candidate = current / name
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                return None
            target = Path(os.readlink(candidate))
            if target.is_absolute():
                current = Path("/")
            pending = [part for part in target.parts if part != "/"] + pending
            continue
        current = candidate
    return current


def _permits(uid: int, groups: set[int], path: Path, wanted: int) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    if info.st_uid == uid:
        bits = (info.st_mode >> 6) & 7
    elif info.st_gid in groups:
        bits = (info.st_mode >> 3) & 7
    else:
        bits = info.st_mode & 7
    return bits & wanted == wanted


def venv_python() -> str:
    """Return this interpreter's path with its folder resolved but its own name kept.

    ``.venv`` may be a link to a venv elsewhere (see scripts/setup), and the
    sandbox user can read only the link's target. The file name stays the
    venv's own ``python`` link, because resolving it would lead to the base
    interpreter and lose the venv's site-packages.
    """
    executable = Path(sys.executable)
    return str(executable.parent.resolve() / executable.name)
