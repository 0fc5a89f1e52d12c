"""The bubblewrap backend: new namespaces, a read-only root of chosen paths, then the bootstrap."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from redtier.sandbox._base import Availability
from redtier.sandbox._limits import Limits
from redtier.sandbox._local import (
    Launch,
    LocalSandbox,
    _child_setup,
    bootstrap_command,
    pyseccomp_folder,
)
from redtier.sandbox._paths import (
    NOBODY_GID,
    NOBODY_UID,
    SOURCE_ROOT,
    is_within,
    outermost,
    python_binds,
    venv_python,
)
from redtier.sandbox._runner import decode_exit_status

logger = logging.getLogger(__name__)

DEFAULT_BWRAP = "/usr/bin/bwrap"
ROOT_ENTRIES = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Top-level entries that are symlinks into /usr on merged-/usr systems, or real folders elsewhere."""
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
)
"""The only parts of /etc mounted in the sandbox: the dynamic linker's cache, alternatives symlinks, the time zone."""
PROBE_TIMEOUT_S = 10.0


class BwrapSandbox(LocalSandbox):
    """Runs the payload with bubblewrap in new user, pid, network, ipc, uts and mount namespaces.

    Inside, the root is a read-only tmpfs with only these mounts:
    ``/usr`` (and its top-level symlinks), the dynamic-linker parts of
    ``/etc``, the interpreter's prefixes, the redtier sources and the
    caller's binds, all read-only. Then a fresh ``/proc``, a minimal
    ``/dev``, a size-capped tmpfs at ``/tmp``, and the writable folder
    read-write at its host path. bwrap itself runs as
    the sandbox user, since bwrap started as root can be escaped.
    """

    name = "bwrap"

    def __init__(
        self,
        *,
        bwrap: str | None = None,
        uid: int = NOBODY_UID,
        gid: int = NOBODY_GID,
        use_cgroups: bool = True,
    ) -> None:
        super().__init__(uid=uid, gid=gid, use_cgroups=use_cgroups)
        self.bwrap = bwrap or shutil.which("bwrap") or DEFAULT_BWRAP
        self._probed = False
        self._probe_problem: tuple[str, str] | None = None

    def availability(self) -> Availability:
        """Check bwrap, the interpreter, seccomp and a real namespace set-up as the sandbox user."""
        isolates = (
            "user, pid, network, ipc, uts and mount namespaces",
            "read-only root of chosen paths",
            "size-capped /tmp",
            "seccomp",
            "rlimits",
            *((f"runs as uid {self.uid}",) if self.as_root else ()),
        )
        cgroups, gaps = self._cgroup_summary()
        isolates += cgroups
        problem = self._bwrap_problem() or self._common_problem() or self._probe()
        if problem is not None:
            return Availability(
                backend=self.name,
                ok=False,
                isolates=isolates,
                problem=problem[0],
                fix=problem[1],
                gaps=gaps,
            )
        return Availability(backend=self.name, ok=True, isolates=isolates, gaps=gaps)

    def _bwrap_problem(self) -> tuple[str, str] | None:
        if not os.access(self.bwrap, os.X_OK):
            return (
                f"bubblewrap is not installed ({self.bwrap} not found)",
                "apt-get install -y bubblewrap",
            )
        return None

    def _probe(self) -> tuple[str, str] | None:
        """Start ``true`` in the namespaces once as the sandbox user, and keep the result."""
        if self._probed:
            return self._probe_problem
        command = [
            self.bwrap,
            *_namespace_args(),
            "--ro-bind",
            "/usr",
            "/usr",
            *_root_entry_args(),
            "--",
            "/usr/bin/true",
        ]
        try:
            result = subprocess.run(
                command,
                check=False,
                capture_output=True,
                timeout=PROBE_TIMEOUT_S,
                preexec_fn=_child_setup(None, (self.uid, self.gid) if self.as_root else None),
                env={"PATH": "/usr/bin:/bin"},
            )
            failure = result.stderr.decode("utf-8", "replace").strip() if result.returncode else ""
        except (OSError, subprocess.TimeoutExpired) as error:
            failure = str(error)
        self._probed = True
        if failure:
            self._probe_problem = (
                f"bwrap cannot create namespaces as uid {self.uid}: {failure}",
                (
                    "allow unprivileged user namespaces: sysctl -w user.max_user_namespaces=15000 "
                    "(on Ubuntu 23.10 and later also sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)"
                ),
            )
        return self._probe_problem

    def _plan(
        self,
        argv: Sequence[str],
        limits: Limits,
        binds: Sequence[Path],
        writable: Path | None,
        env: Mapping[str, str],
    ) -> Launch:
        command = [
            self.bwrap,
            *_namespace_args(),
            "--new-session",
            "--hostname", "sandbox",
            "--ro-bind", "/usr", "/usr",
            *_root_entry_args(),
            *_etc_args(),
            # CPU topology, which thread pools (OpenMP, PyTorch) read to size themselves.
            "--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu",
            "--proc", "/proc",
            "--dev", "/dev",
            "--size", str(limits.tmp_size_bytes),
            "--tmpfs", "/tmp",
            *_bind_args(binds, writable),
            "--chdir", os.path.realpath(writable) if writable is not None else "/tmp",
            # bwrap builds the root on a tmpfs that the sandbox user may write, so freeze it.
            "--remount-ro", "/",
            "--",
            *bootstrap_command(venv_python()),
        ]  # fmt: skip
        return Launch(
            command=command, cwd="/", env=dict(env), max_processes=limits.max_processes + 1
        )

    def _decode(self, returncode: int) -> tuple[int | None, int | None]:
        return decode_exit_status(returncode)


def _namespace_args() -> list[str]:
    # --unshare-all only tries the user namespace, but --disable-userns needs one for certain.
    return ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"]


def _root_entry_args() -> list[str]:
    args: list[str] = []
    for entry in ROOT_ENTRIES:
        if os.path.islink(entry):
            args += ["--symlink", os.readlink(entry), entry]
        elif os.path.isdir(entry):
            args += ["--ro-bind", entry, entry]
    return args


def _etc_args() -> list[str]:
    args: list[str] = []
    for path in ETC_FILES:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


def _bind_args(binds: Sequence[Path], writable: Path | None) -> list[str]:
    """Mount read-only binds and the writable folder, outer paths first so inner ones stay visible."""
    seccomp_folder = pyseccomp_folder()
    read = [*python_binds(), SOURCE_ROOT, *([seccomp_folder] if seccomp_folder else []), *binds]
    read = [Path(os.path.realpath(path)) for path in read]
    mounts = [(path, "--ro-bind") for path in outermost(read) if not is_within(path, Path("/usr"))]
    if writable is not None:
        mounts.append((Path(os.path.realpath(writable)), "--bind"))
    args: list[str] = []
    for path, option in sorted(mounts, key=lambda item: len(item[0].parts)):
        args += [option, str(path), str(path)]
    return args
