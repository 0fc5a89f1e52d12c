"""Landlock through raw system calls: restrict the calling process to given folders.

Linux 5.13 added Landlock, and each later ABI version handles more rights
(see the kernel's ``Documentation/userspace-api/landlock.rst``). This module
queries the kernel for its ABI version and handles every right that version knows:
file access (ABI 1), cross-folder links and renames (2), truncation (3),
TCP bind and connect (4, always denied here), device ioctls (5), and the
scopes that keep the process from signalling processes or connecting to
abstract unix sockets outside its own Landlock domain (6).

It imports only the standard library, because the sandbox bootstrap loads it
as a top-level module without importing the ``redtier`` package.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Iterable

SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
"""System call numbers, the same on every architecture (assigned after the tables were unified)."""

CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REFER = 1 << 13
FS_TRUNCATE = 1 << 14
FS_IOCTL_DEV = 1 << 15
FS_ABI1_ALL = (1 << 13) - 1
"""EXECUTE through MAKE_SYM: the 13 rights of ABI 1."""
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
"""The rights that apply to a file (the rest apply to folders only)."""
READ_RIGHTS = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR

NET_BIND_TCP = 1 << 0
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _syscall(number: int, *args: object) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = int(libc.syscall(ctypes.c_long(number), *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def abi_version() -> int:
    """Return the kernel's Landlock ABI version, or 0 when Landlock is missing or disabled."""
    try:
        return _syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            None,
            ctypes.c_size_t(0),
            ctypes.c_uint32(CREATE_RULESET_VERSION),
        )
    except OSError as error:
        if error.errno in (errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
            return 0
        raise


def handled_fs_rights(abi: int) -> int:
    """Return every file-system right that Landlock ABI ``abi`` can restrict."""
    rights = FS_ABI1_ALL
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def restrict(read: Iterable[str], write: Iterable[str]) -> int:
    """Allow reading ``read``, everything under ``write``, nothing else; return the ABI used.

    Paths that do not exist are skipped. Raises ``OSError`` when the kernel
    lacks Landlock or a call fails, so a caller that needs the restriction
    can stop instead of running unrestricted.
    """
    abi = abi_version()
    if abi == 0:
        raise OSError(errno.EOPNOTSUPP, "Landlock is not supported or is disabled in this kernel")
    handled = handled_fs_rights(abi)
    ruleset_fd = _create_ruleset(abi, handled)
    try:
        for path in read:
            _allow(ruleset_fd, path, READ_RIGHTS & handled)
        for path in write:
            _allow(ruleset_fd, path, handled)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(code)}")
        _syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0))
    finally:
        os.close(ruleset_fd)
    return abi


def _create_ruleset(abi: int, handled_fs: int) -> int:
    attr = _RulesetAttr(handled_access_fs=handled_fs)
    size = 8
    if abi >= 4:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = 24
    return _syscall(
        SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )


def _allow(ruleset_fd: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= FILE_RIGHTS
        rule = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        _syscall(
            SYS_LANDLOCK_ADD_RULE,
            ctypes.c_int(ruleset_fd),
            ctypes.c_int(RULE_PATH_BENEATH),
            ctypes.byref(rule),
            ctypes.c_uint32(0),
        )
    finally:
        os.close(fd)
