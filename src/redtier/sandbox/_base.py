"""The sandbox interface: run an untrusted command with no network, read-only files and limits."""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from redtier.sandbox._limits import Limits


class Availability(BaseModel):
    """Whether a sandbox backend works on this machine, and how to fix it if not."""

    model_config = ConfigDict(frozen=True)

    backend: str
    ok: bool
    isolates: tuple[str, ...]
    """What the backend isolates when it works, e.g. ``network namespace``, ``seccomp``."""
    problem: str = ""
    fix: str = ""
    """The exact command or setting that makes the backend work."""
    gaps: tuple[str, ...] = ()
    """Limits of the isolation on this machine, e.g. ``no pid namespace``."""


class SandboxRun(BaseModel):
    """The outcome of one finished sandboxed command, as seen from outside."""

    model_config = ConfigDict(frozen=True)

    exit_code: int | None
    """Exit status, or None when a signal ended the process."""
    signal: int | None
    stdout: str
    stderr: str
    wall_s: float
    timed_out: bool
    limits_hit: tuple[str, ...] = ()
    """Limits the process ran into: ``wall_timeout``, ``cpu``, ``memory``, ``file_size``, ``processes``,
    ``output`` (more than ``Limits.max_output_bytes`` on stdout or stderr)."""


class Sandbox(ABC):
    """A way to start an untrusted process isolated from the host.

    ``binds`` are host paths made visible read-only at the same path inside.
    ``writable`` is one host folder mounted read-write (the working folder);
    everything else the process sees is read-only or absent, and it has no
    network.
    """

    name: str

    def describe(self) -> str:
        """Return one line for run records: the backend, what it isolates here and what it does not."""
        availability = self.availability()
        if not availability.ok:
            return f"{self.name}: not available ({availability.problem})"
        text = f"{self.name}: isolates " + ", ".join(availability.isolates)
        if availability.gaps:
            text += "; isolates less: " + ", ".join(availability.gaps)
        return text

    def python_executable(self) -> str:
        """Return the Python interpreter to name in ``argv`` so that it runs inside this sandbox."""
        from redtier.sandbox._paths import venv_python

        return venv_python()

    def grant_write(self, path: Path) -> None:
        """Let the sandboxed user write into the existing folder ``path``; by default nothing to do."""

    @abstractmethod
    def availability(self) -> Availability:
        """Check, without side effects, whether this backend works here."""

    @abstractmethod
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
        """Start ``argv`` in the sandbox and return the process; the caller enforces the wall timeout."""

    @abstractmethod
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
        """Run ``argv`` to completion (or to the wall timeout, killing the whole tree)."""
