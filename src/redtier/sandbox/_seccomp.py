"""The seccomp filter every local sandbox loads just before it executes the payload.

Denied calls fail with EPERM (ENOSYS for ``clone3``, so that the C library
falls back to ``clone``, whose flags the filter can inspect). Everything else
is allowed: the filter closes the doors out of the sandbox (sockets other
than unix sockets, namespaces, mounts, tracing, kernel keys, modules, BPF,
io_uring), and the namespaces, Landlock and limits do the rest.

It imports only the standard library and, inside :func:`install`,
``pyseccomp`` (a ctypes wrapper of the system's libseccomp), because the
sandbox bootstrap loads it as a top-level module without importing the
``redtier`` package.
"""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Iterable, Mapping
from types import ModuleType

DENIED_SYSCALLS = (
    # Debugging and reading other processes' memory.
    "ptrace", "process_vm_readv", "process_vm_writev", "perf_event_open",
    # Mounts and namespaces, including the new mount API.
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    # Kernel interfaces with a record of privilege escalations.
    "bpf", "keyctl", "add_key", "request_key", "userfaultfd", "open_by_handle_at",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    # io_uring can open sockets without the socket() call this filter inspects.
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)  # fmt: skip

CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)

AF_UNIX = 1
"""From <sys/socket.h>; written out so the bootstrap need not import ``socket``."""

LIBRARIES = ("c", "seccomp")
"""Names pyseccomp passes to ``ctypes.util.find_library`` when it is imported."""


@functools.cache
def locate_libraries() -> dict[str, str]:
    """Return the shared-library names pyseccomp needs, resolved on the host (empty values: missing).

    The result is cached for the life of the process: each look-up runs ``ldconfig``.
    """
    import ctypes.util

    return {name: ctypes.util.find_library(name) or "" for name in LIBRARIES}


def load_pyseccomp(libraries: Mapping[str, str] | None = None) -> ModuleType:
    """Import pyseccomp. With ``libraries``, resolve its library look-ups from that mapping.

    pyseccomp calls ``ctypes.util.find_library`` when it is imported, which
    imports ``subprocess`` and ``tempfile`` and runs ``/sbin/ldconfig -p`` in
    a child process: about 10 ms and a fork that a tight process limit may
    refuse. The bootstrap passes the names the host resolved instead, through
    a stand-in ``ctypes.util`` module that exists only during the import. A
    name missing from ``libraries`` makes the import fail, as a missing
    library would.
    """
    if libraries is None:
        import pyseccomp

        return pyseccomp
    import ctypes

    stand_in = ModuleType("ctypes.util")
    stand_in.find_library = lambda name: libraries.get(name) or None  # type: ignore[attr-defined]
    saved = sys.modules.get("ctypes.util")
    sys.modules["ctypes.util"] = stand_in
    ctypes.util = stand_in  # type: ignore[attr-defined]
    try:
        import pyseccomp
    finally:
        if saved is None:
            del sys.modules["ctypes.util"]
            del ctypes.util  # type: ignore[attr-defined]
        else:
            sys.modules["ctypes.util"] = saved
            ctypes.util = saved  # type: ignore[attr-defined]
    return pyseccomp


def install(extra_denied: Iterable[str] = (), libraries: Mapping[str, str] | None = None) -> None:
    """Load the filter into the calling process, where it stays for the process and all it executes.

    libseccomp also sets ``no_new_privs``, so set-uid programs cannot regain
    privileges, and kills the process on a system call of a foreign
    architecture (such as 32-bit ``int 0x80`` calls on x86-64).
    """
    seccomp = load_pyseccomp(libraries)
    denied = seccomp.ERRNO(errno.EPERM)
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    names = dict.fromkeys((*DENIED_SYSCALLS, *extra_denied))
    for name in names:
        rules.add_rule(denied, name)
    if "socket" not in names:
        rules.add_rule(denied, "socket", seccomp.Arg(0, seccomp.NE, AF_UNIX))
    for flag in CLONE_NAMESPACE_FLAGS:
        rules.add_rule(denied, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    rules.load()
