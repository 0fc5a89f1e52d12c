"""The process backend: no namespaces, only the sandbox user, Landlock, seccomp, rlimits and cgroups."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from redtier.sandbox import _landlock
from redtier.sandbox._base import Availability
from redtier.sandbox._limits import Limits
from redtier.sandbox._local import Launch, LocalSandbox, bootstrap_command, pyseccomp_folder
from redtier.sandbox._paths import SOURCE_ROOT, python_binds, venv_python

logger = logging.getLogger(__name__)

SYSTEM_READS = (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime",
    "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
    "/sys/devices/system/cpu", "/proc/cpuinfo", "/proc/self",
)  # fmt: skip
"""Paths every payload may read besides the binds, close to the view the bwrap backend gives.

``/proc/cpuinfo`` is how PyTorch's cpuinfo learns the instruction sets: without it,
PyTorch falls back to its slowest kernels (about 20% fewer tokens per second).

The bootstrap opens ``/proc/self`` itself, so the rule covers its own
``/proc/PID``, which the payload keeps after ``execv``. Other processes'
``/proc`` entries stay unreadable.
"""
SYSTEM_WRITES = ("/dev/null",)
EXTRA_DENIED = ("socket", "setsid", "setpgid")
"""Calls refused on top of the common filter, because there are no namespaces.

``socket``: every family, unix sockets included, since host unix sockets are
reachable by path and Landlock before ABI 9 does not restrict ``connect`` to
them (``socketpair`` still works). ``setsid``, ``setpgid``: the process group
is what ties the tree together for the wall-timeout kill when there is no
cgroup.
"""


class ProcessSandbox(LocalSandbox):
    """Runs the payload as the sandbox user with Landlock and seccomp, but in the host's namespaces.

    It isolates less than :class:`~redtier.sandbox.BwrapSandbox`. It shares
    the host's network stack, from which only seccomp (every ``socket()``
    call is refused) and Landlock ABI 4+ (TCP bind and connect) keep it. It
    shares the host's pid space. Without Landlock (Linux before 5.13, or
    disabled) it can read whatever its uid can read on the host. Its
    temporary folder is a private host folder with no size cap.
    """

    name = "process"

    def availability(self) -> Availability:
        """Check the interpreter and seccomp, and report Landlock's ABI or its absence as a gap."""
        abi = _landlock.abi_version()
        isolates = [*((f"runs as uid {self.uid}",) if self.as_root else ()), "seccomp", "rlimits"]

        gaps = [
            "no network namespace: seccomp refuses every socket() call (socketpair() works)",
            "no pid namespace: it shares the host's pid space",
            "no mount namespace: its temporary folder has no size cap",
        ]

        if abi:
            isolates.append(
                f"Landlock ABI {abi}: reads limited to the binds, writes to the working folder and a private temporary folder"
            )
            if abi < 6:
                gaps.append(
                    f"Landlock ABI {abi} < 6: it can signal processes of uid {self.uid} and reach abstract unix sockets"
                )
        else:
            gaps.append(
                f"no Landlock in this kernel: it can read and write whatever uid {self.uid} can on the host"
            )
        if not self.as_root:
            gaps.append(f"runs as the calling user (uid {self.uid}), not a separate sandbox user")
        cgroups, cgroup_gaps = self._cgroup_summary()
        isolates += cgroups
        gaps += cgroup_gaps

        problem = self._common_problem()
        if problem is not None:
            return Availability(
                backend=self.name,
                ok=False,
                isolates=tuple(isolates),
                problem=problem[0],
                fix=problem[1],
                gaps=tuple(gaps),
            )
        return Availability(backend=self.name, ok=True, isolates=tuple(isolates), gaps=tuple(gaps))

    def _plan(
        self,
        argv: Sequence[str],
        limits: Limits,
        binds: Sequence[Path],
        writable: Path | None,
        env: Mapping[str, str],
    ) -> Launch:
        private_tmp = Path(tempfile.mkdtemp(prefix="redtier-tmp-"))
        self.grant_write(private_tmp)
        environment = dict(env)
        if environment.get("TMPDIR", "/tmp") == "/tmp":
            environment["TMPDIR"] = str(private_tmp)
        if environment.get("HOME", "/tmp") == "/tmp":
            environment["HOME"] = str(writable or private_tmp)
        landlock = None
        if _landlock.abi_version():
            seccomp_folder = pyseccomp_folder()
            extra = [
                SOURCE_ROOT,
                *([seccomp_folder] if seccomp_folder else []),
                *python_binds(),
                *binds,
            ]
            writes = [str(private_tmp), *SYSTEM_WRITES, *([str(writable)] if writable else [])]
            landlock = {"read": [*SYSTEM_READS, *map(str, extra)], "write": writes}
        return Launch(
            command=bootstrap_command(venv_python()),
            cwd=str(writable or private_tmp),
            env=environment,
            landlock=landlock,
            extra_denied=EXTRA_DENIED,
            max_processes=limits.max_processes + count_processes(self.uid),
            folders=[private_tmp],
        )


def count_processes(uid: int) -> int:
    """Count the processes that ``uid`` runs now, which RLIMIT_NPROC counts too.

    RLIMIT_NPROC caps all processes of the uid on the host, so the process
    backend adds this count to ``max_processes``.

    NOTE: RLIMIT_NPROC also counts threads, which this does not. Processes
    of the uid that start or end meanwhile also shift the real cap.
    """
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += 1
        except OSError:
            continue
    return count
