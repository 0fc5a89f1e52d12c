"""Reports of runs of untrusted code: the attempts seen from inside and outside the sandbox."""

from __future__ import annotations

import signal as signals
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from redtier.detectors import Behaviour
from redtier.sandbox import Limits

Language = Literal["python", "shell"]
Source = Literal["audit", "trace", "outside"]


class ObservedBehaviour(BaseModel):
    """One thing the code tried to do, classed by the same behaviours as static analysis."""

    model_config = ConfigDict(frozen=True)

    behaviour: Behaviour
    detail: str
    """The attempt and its target, for example ``connect 127.0.0.1:4444``."""
    source: Source
    """``audit``: the Python audit hook inside the sandbox; ``trace``: the ``bash -x`` trace;
    ``outside``: exit status, signals and limits seen by the host. The first two are
    written by the code's own process, so code that tampers with them can fake or hide entries."""
    blocked: bool
    """True when the attempt failed, or by construction of every backend could not reach
    outside the sandbox (every network attempt, host unix sockets, signals in a separate
    pid namespace). False when it succeeded inside the sandbox or its outcome is unknown."""
    strong: bool = True
    """False for attempts that benign code also makes, such as reading a file outside the
    working folder or starting ``sort``. Only strong entries count as malicious."""
    contained: bool = False
    """True when the attempt reached only the sandbox's own copy of its target (``/proc/1``
    in the sandbox's own pid namespace): it may have succeeded, but reached nothing of the
    host. ``blocked`` is then True too."""

    @property
    def outcome(self) -> str:
        """Return ``contained``, ``blocked`` or ``not blocked``."""
        if self.contained:
            return "contained"
        return "blocked" if self.blocked else "not blocked"

    def line(self) -> str:
        """Return one evidence line, e.g. ``network: connect 127.0.0.1:4444 (blocked, audit)``."""
        outcome = self.outcome
        weak = ", weak" if not self.strong else ""
        return f"{self.behaviour.value}: {self.detail} ({outcome}, {self.source}{weak})"


class ExecutionReport(BaseModel):
    """The outcome of running one piece of code in a sandbox, and what it tried to do."""

    model_config = ConfigDict(frozen=True)

    language: Language
    sandbox: str
    """The backend name, such as ``bwrap``."""
    isolation: str
    """The backend's isolation on this machine (:meth:`redtier.sandbox.Sandbox.describe`)."""
    limits: Limits
    exit_code: int | None
    """Exit status, or None when a signal ended the process."""
    signal: int | None
    timed_out: bool
    limits_hit: tuple[str, ...] = ()
    """Limits the run ran into, named as in :class:`redtier.sandbox.SandboxRun`. Besides the
    sandbox's own findings, ``memory`` when bash reports a refused allocation and ``processes``
    when the audit log shows a fork refused with EAGAIN; both come from the code's own process."""
    wall_s: float = Field(ge=0.0)
    stdout: str = ""
    """An excerpt of standard output, with control characters escaped."""
    stderr: str = ""
    """An excerpt of standard error, with control characters escaped."""
    behaviours: tuple[ObservedBehaviour, ...] = ()
    """Attempts the code made, as recorded. NOTE: some attempts go unrecorded, such as
    calls through a library that ``ctypes`` loaded and what a shell started from Python
    does. The README's sandbox section lists them."""
    notes: tuple[str, ...] = ()
    """Limits of this report, such as an audit log that was cut short or altered."""

    @property
    def malicious(self) -> tuple[ObservedBehaviour, ...]:
        """The strong behaviours: what benign code does not do."""
        return tuple(item for item in self.behaviours if item.strong)

    def outcome(self) -> str:
        """Return how the run ended, e.g. ``exit status 0`` or ``killed by SIGXCPU``."""
        if self.timed_out:
            return f"killed at the {self.limits.wall_timeout_s:g} s wall timeout"
        if self.signal is not None:
            try:
                name = signals.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by {name}"
        return f"exit status {self.exit_code}"

    def summary(self) -> str:
        """Return one line: sandbox, outcome, limits hit and the behaviours observed."""
        text = f"{self.language} in the {self.sandbox} sandbox: {self.outcome()} after {self.wall_s:.2f} s"
        if self.limits_hit:
            text += "; limits hit: " + ", ".join(self.limits_hit)
        strong = self.malicious
        weak = len(self.behaviours) - len(strong)
        others = f" ({weak} weak attempt{'s' if weak != 1 else ''} also recorded)" if weak else ""
        if not strong:
            return text + "; no malicious behaviour observed" + others
        classes: dict[str, list[ObservedBehaviour]] = {}
        for item in strong:
            classes.setdefault(item.behaviour.value, []).append(item)
        parts = [
            f"{name} ({sum(item.blocked for item in items)} of {len(items)} blocked"
            f"{' or contained' if any(item.contained for item in items) else ''})"
            for name, items in classes.items()
        ]
        return text + "; tried: " + ", ".join(parts) + others
