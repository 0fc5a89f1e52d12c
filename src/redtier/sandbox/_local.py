"""Shared parts of the bwrap and process backends: the sandbox user, the bootstrap, cgroups and path checks."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pwd
import select
import subprocess
import sys
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redtier.errors import SandboxError, UnwritableFolderError
from redtier.sandbox import _seccomp
from redtier.sandbox._base import Sandbox, SandboxRun
from redtier.sandbox._cgroups import CgroupSet, writable_parents
from redtier.sandbox._inside import SETUP_FAILED
from redtier.sandbox._limits import Limits
from redtier.sandbox._paths import (
    INSIDE_SCRIPT,
    NOBODY_GID,
    NOBODY_UID,
    SOURCE_ROOT,
    chown_tree,
    readable_by,
    venv_python,
)
from redtier.sandbox._runner import SandboxProcess, Teardown, decode_returncode, run_to_completion

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
"""How long ``popen`` waits for the bootstrap to report that the payload is starting."""
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
RECREATE_VENV = "rm -rf .venv && PYTHON=/usr/bin/python3.11 scripts/setup"


@dataclass
class Launch:
    """The command line that starts the bootstrap in one backend, and the restrictions the bootstrap applies."""

    command: list[str]
    """Ends with the bootstrap (see :func:`bootstrap_command`), to which ``popen`` appends its arguments."""
    cwd: str
    env: dict[str, str]
    landlock: dict[str, list[str]] | None = None
    extra_denied: tuple[str, ...] = ()
    max_processes: int = 0
    folders: list[Path] = field(default_factory=list)
    """Temporary host folders to delete when the process ends."""


class LocalSandbox(Sandbox):
    """A backend that runs the payload on this host through :mod:`redtier.sandbox._inside`.

    As root, the child process joins its cgroups and then switches to
    ``uid``/``gid`` (``nobody`` by default) before it executes anything, so
    neither the sandbox tool nor the payload ever runs as root. As any other
    user it keeps that user's uid and gid.
    """

    def __init__(
        self, *, uid: int = NOBODY_UID, gid: int = NOBODY_GID, use_cgroups: bool = True
    ) -> None:
        self.as_root = os.geteuid() == 0
        self.uid = uid if self.as_root else os.getuid()
        self.gid = gid if self.as_root else os.getgid()
        self.use_cgroups = use_cgroups

    @abstractmethod
    def _plan(
        self,
        argv: Sequence[str],
        limits: Limits,
        binds: Sequence[Path],
        writable: Path | None,
        env: Mapping[str, str],
    ) -> Launch:
        """Build the command line that starts ``argv`` in this backend's isolation."""

    def _decode(self, returncode: int) -> tuple[int | None, int | None]:
        """Turn the return code into (exit code, signal), as the backend reports signals."""
        return decode_returncode(returncode)

    def grant_write(self, path: Path) -> None:
        """Make the sandbox user the owner of the folder ``path`` and its contents, as root.

        Any other user runs the sandbox under its own uid and owns the folder already.
        """
        if self.as_root:
            chown_tree(path, self.uid, self.gid)

    def popen(
        self,
        argv: Sequence[str],
        *,
        limits: Limits,
        binds: Sequence[Path] = (),
        writable: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdin: int | None = subprocess.PIPE,
        stdout: int | None = subprocess.PIPE,
        stderr: int | None = subprocess.PIPE,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the sandbox and return once its restrictions are in place and it is executing.

        Raises :class:`~redtier.errors.SandboxError` when a path cannot be
        reached by the sandbox user or the sandbox could not be set up.
        """
        if not argv:
            raise SandboxError("Cannot start an empty command in the sandbox.")
        binds = [Path(os.path.abspath(path)) for path in binds]
        writable = Path(os.path.abspath(writable)) if writable is not None else None
        self._check_paths(binds, writable)
        launch = self._plan(argv, limits, binds, writable, self._environment(env))
        parents = writable_parents() if self.use_cgroups else {}
        teardown = Teardown(CgroupSet.create(limits, parents) if parents else None, launch.folders)
        status_read, status_write = os.pipe2(os.O_CLOEXEC)
        config = bootstrap_config(limits, launch, status_write)
        command = [*launch.command, "--config", json.dumps(config), "--", *argv]
        try:
            process = SandboxProcess(
                command,
                teardown=teardown,
                decode=self._decode,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                env=launch.env,
                cwd=launch.cwd,
                start_new_session=True,
                pass_fds=(status_write,),
                preexec_fn=_child_setup(
                    teardown.cgroups, (self.uid, self.gid) if self.as_root else None
                ),
            )
        except (OSError, subprocess.SubprocessError) as error:
            # SubprocessError: the child failed in _child_setup (joining a cgroup or switching user).
            teardown.release()
            raise SandboxError(
                f"The {self.name} sandbox failed to start {command[0]}: {error}"
            ) from error
        finally:
            os.close(status_write)
        _await_start(self.name, process, status_read)
        return process

    def run(
        self,
        argv: Sequence[str],
        *,
        limits: Limits,
        binds: Sequence[Path] = (),
        writable: Path | None = None,
        env: Mapping[str, str] | None = None,
        input_bytes: bytes | None = None,
    ) -> SandboxRun:
        """Run ``argv`` to completion or to the wall timeout, then kill whatever is left of its tree."""
        process = self.popen(argv, limits=limits, binds=binds, writable=writable, env=env)
        assert isinstance(process, SandboxProcess)
        return run_to_completion(process, limits, input_bytes)

    def _environment(self, env: Mapping[str, str] | None) -> dict[str, str]:
        """Return a fresh environment: nothing of the host's leaks in except what the caller passes."""
        try:
            user = pwd.getpwuid(self.uid).pw_name
        except KeyError:
            user = str(self.uid)
        base = {
            "PATH": DEFAULT_PATH,
            "LANG": "C.UTF-8",
            "USER": user,
            "LOGNAME": user,
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
        }
        return {**base, **(env or {})}

    def _check_paths(self, binds: Sequence[Path], writable: Path | None) -> None:
        for path in binds:
            if not path.exists():
                raise SandboxError(f"Bind path {path} does not exist.")
            if not readable_by(self.uid, path, gid=self.gid):
                raise SandboxError(
                    f"Bind path {path} is not readable by the sandbox user (uid {self.uid}): every folder "
                    f"above it must be searchable (o+x) and it must be readable. Move it under a "
                    f"world-readable folder such as /tmp, or change its permissions."
                )
        if writable is None:
            return
        if not writable.is_dir():
            raise SandboxError(f"Writable folder {writable} does not exist or is not a folder.")
        if not readable_by(self.uid, writable, gid=self.gid, write=True):
            raise UnwritableFolderError(
                f"Writable folder {writable} is not writable by the sandbox user (uid {self.uid}). Call "
                f"redtier.sandbox.grant_write(sandbox, path) on it, or use redtier.sandbox.make_workdir(sandbox).",
                writable,
                self.uid,
            )

    def _common_problem(self) -> tuple[str, str] | None:
        """Return (problem, fix) when the interpreter, bootstrap or seccomp cannot work here."""
        if sys.platform != "linux":
            return (
                f"the {self.name} sandbox needs Linux, not {sys.platform}",
                "use the docker backend",
            )
        unreadable = [
            path for path in interpreter_paths() if not readable_by(self.uid, path, gid=self.gid)
        ]
        if unreadable:
            names = ", ".join(map(str, unreadable))
            return (
                f"the sandbox user (uid {self.uid}) cannot read {names}, which the sandboxed Python needs",
                f"recreate the venv with a world-readable interpreter: {RECREATE_VENV}",
            )
        return seccomp_problem()

    def _cgroup_summary(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Return what cgroups add here, as (isolates, gaps)."""
        parents = writable_parents() if self.use_cgroups else {}
        if parents:
            names: list[str] = [name for name in ("memory", "pids") if name in parents]
            if "cpu" in parents:
                names.append("cpu quota when a CPU cap is set")
            return (f"cgroups ({', '.join(names)})",), ()
        reason = "disabled" if not self.use_cgroups else "no writable cgroup v1 hierarchy"
        return (), (
            f"no cgroups ({reason}): memory capped by RLIMIT_AS only, processes by RLIMIT_NPROC only",
        )


def bootstrap_config(limits: Limits, launch: Launch, status_fd: int) -> dict[str, Any]:
    """Return the configuration :mod:`redtier.sandbox._inside` reads (see its docstring)."""
    processes = launch.max_processes or limits.max_processes
    return {
        "status_fd": status_fd,
        "rlimits": {
            "RLIMIT_CPU": [limits.cpu_seconds, limits.cpu_seconds + 1],
            "RLIMIT_NPROC": [processes, processes],
            "RLIMIT_FSIZE": [limits.file_size_bytes, limits.file_size_bytes],
            "RLIMIT_NOFILE": [limits.open_files, limits.open_files],
            "RLIMIT_CORE": [0, 0],
            "RLIMIT_AS": [limits.address_space_limit()] * 2,
        },
        "landlock": launch.landlock,
        "seccomp": {
            "path": str(pyseccomp_folder() or ""),
            "libraries": _seccomp.locate_libraries(),
            "extra_denied": list(launch.extra_denied),
        },
    }


def bootstrap_command(python: str) -> list[str]:
    """Return the bootstrap's command line, to which ``popen`` appends ``--config JSON -- ARGV...``."""
    return [python, "-I", "-S", "-B", str(INSIDE_SCRIPT)]


def interpreter_paths() -> list[Path]:
    """Return the files and folders the sandboxed interpreter and bootstrap must be able to read."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    paths = [
        Path(venv_python()),
        Path(sys.base_prefix) / "lib" / version,
        INSIDE_SCRIPT,
        SOURCE_ROOT,
    ]
    folder = pyseccomp_folder()
    if folder is not None:
        paths.append(folder)
    return paths


def pyseccomp_folder() -> Path | None:
    """Return the folder that contains the ``pyseccomp`` module, or None when it is not installed."""
    spec = importlib.util.find_spec("pyseccomp")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).resolve().parent


def seccomp_problem() -> tuple[str, str] | None:
    """Return (problem, fix) when seccomp filters cannot be loaded here."""
    if pyseccomp_folder() is None:
        return "the pyseccomp package is not installed", ".venv/bin/pip install pyseccomp"
    if not _seccomp.locate_libraries()["seccomp"]:
        return "the libseccomp system library is missing", "apt-get install -y libseccomp2"
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        status = ""
    if "Seccomp:" not in status:
        return "this kernel has no seccomp support", "use a kernel built with CONFIG_SECCOMP_FILTER"
    return None


def _child_setup(
    cgroups: CgroupSet | None, switch_to: tuple[int, int] | None
) -> Callable[[], None]:
    """Return the function the child runs between fork and exec.

    Joining the cgroups needs root, so it happens here, before the switch to
    the sandbox user (``Popen(user=...)`` would switch before this function
    runs). Only ``os`` calls run here, since CPython warns that arbitrary
    code between fork and exec can deadlock when the parent has threads.
    """
    procs_files = cgroups.procs_files() if cgroups is not None else ()

    def setup() -> None:
        for path in procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        if switch_to is not None:
            os.setgroups([])
            os.setgid(switch_to[1])
            os.setuid(switch_to[0])

    return setup


def _await_start(backend: str, process: SandboxProcess, status_read: int) -> None:
    """Wait for the bootstrap's ``R`` (restrictions applied), or raise with the reason it sent after ``E``."""
    try:
        ready, _, _ = select.select([status_read], [], [], START_TIMEOUT_S)
        message = os.read(status_read, 65536) if ready else None
    finally:
        os.close(status_read)
    if message is not None and message.startswith(b"R"):
        return
    process.kill_tree()
    if message is None:
        process.wait()
        raise SandboxError(
            f"The {backend} sandbox timed out after {START_TIMEOUT_S:.0f} s before the payload started."
        )
    output = _stderr_of(process)
    if message.startswith(b"E"):
        raise SandboxError(
            f"The {backend} sandbox setup failed: {message[1:].decode('utf-8', 'replace')}"
        )
    code = process.returncode
    reason = output or (
        "the bootstrap failed before it could report why"
        if code == SETUP_FAILED
        else "no error output"
    )
    raise SandboxError(
        f"The {backend} sandbox failed before the payload started (exit status {code}): {reason}"
    )


def _stderr_of(process: SandboxProcess) -> str:
    """Return the stderr of a process that failed to start, when the caller left it a pipe."""
    try:
        _, error = process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill_tree()
        process.wait()
        return ""
    return (error or b"").decode("utf-8", "replace").strip()[-2000:]
