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

import ctypes.util
import errno
import functools
import socket
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

LIBRARIES = ("c", "seccomp")
"""Names pyseccomp passes to ``ctypes.util.find_library`` when it is imported."""


@functools.cache
def locate_libraries() -> dict[str, str]:
    """Return the shared-library names pyseccomp needs, resolved on the host (empty values: missing).

    The result is cached for the life of the process: each look-up runs ``ldconfig``.
    """
    return {name: ctypes.util.find_library(name) or "" for name in LIBRARIES}


def load_pyseccomp(libraries: Mapping[str, str] | None = None) -> ModuleType:
    """Import pyseccomp; with ``libraries``, answer its library look-ups from that mapping.

    ``ctypes.util.find_library`` runs ``/sbin/ldconfig -p`` in a child
    process, which costs a fork that a tight process limit may refuse. The
    bootstrap passes the names the host resolved instead.
    """
    if libraries is None:
        import pyseccomp

        return pyseccomp
    original = ctypes.util.find_library
    ctypes.util.find_library = lambda name: libraries.get(name) or original(name)
    try:
        import pyseccomp
    finally:
        ctypes.util.find_library = original
    return pyseccomp


def install(extra_denied: Iterable[str] = (), libraries: Mapping[str, str] | None = None) -> None:
    """Load the filter into the calling process; it stays for the process and everything it executes.

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
        rules.add_rule(denied, "socket", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    for flag in CLONE_NAMESPACE_FLAGS:
        rules.add_rule(denied, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    rules.load()
