"""A real check of each backend: availability, then a trivial command run inside it."""

from __future__ import annotations

import logging
import time

from pydantic import BaseModel, ConfigDict

from redtier.errors import SandboxError
from redtier.sandbox._base import Sandbox
from redtier.sandbox._limits import Limits

logger = logging.getLogger(__name__)

CHECK_LIMITS = Limits(wall_timeout_s=60.0, cpu_seconds=30)
EXPECTED_OUTPUT = "1"


class BackendCheck(BaseModel):
    """The outcome of checking one sandbox backend on this machine."""

    model_config = ConfigDict(frozen=True)

    backend: str
    available: bool
    """The ``ok`` field of ``availability()``."""
    works: bool
    """Whether ``python -c 'print(1)'`` ran in the sandbox and printed 1."""
    isolates: tuple[str, ...]
    gaps: tuple[str, ...]
    problem: str = ""
    fix: str = ""
    start_s: float | None = None
    """Wall time of the trivial command, start-up included."""


def check_backend(sandbox: Sandbox) -> BackendCheck:
    """Report ``sandbox``'s availability and, when it claims to work, run ``python -c 'print(1)'`` in it."""
    availability = sandbox.availability()
    check = BackendCheck(
        backend=sandbox.name,
        available=availability.ok,
        works=False,
        isolates=availability.isolates,
        gaps=availability.gaps,
        problem=availability.problem,
        fix=availability.fix,
    )
    if not availability.ok:
        return check
    started = time.monotonic()
    try:
        run = sandbox.run([sandbox.python_executable(), "-c", "print(1)"], limits=CHECK_LIMITS)
    except SandboxError as error:
        logger.warning(
            "The %s sandbox claims to work but failed to start a command: %s", sandbox.name, error
        )
        return check.model_copy(update={"problem": str(error)})
    elapsed = time.monotonic() - started
    if run.exit_code == 0 and run.stdout.strip() == EXPECTED_OUTPUT:
        return check.model_copy(update={"works": True, "start_s": elapsed})
    problem = f"`python -c 'print(1)'` exited with {run.exit_code} (signal {run.signal}), and stderr ends: {run.stderr.strip()[-500:]}"
    return check.model_copy(update={"start_s": elapsed, "problem": problem})
