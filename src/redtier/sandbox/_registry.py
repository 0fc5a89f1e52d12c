"""The sandbox backends by name, and the choice of one for this machine."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from redtier.errors import SandboxError, UnknownNameError
from redtier.registry import Registry
from redtier.sandbox._base import Sandbox
from redtier.sandbox._bwrap import BwrapSandbox
from redtier.sandbox._docker import DockerSandbox
from redtier.sandbox._process import ProcessSandbox

logger = logging.getLogger(__name__)

SANDBOXES: Registry[Callable[[], Sandbox]] = Registry("sandbox")
SANDBOXES.add("bwrap", BwrapSandbox)
SANDBOXES.add("process", ProcessSandbox)
SANDBOXES.add("docker", DockerSandbox)

AUTO_ORDER = ("bwrap", "process")
"""Backends ``auto`` tries, strongest first. Docker is used only when named, since it needs an engine and its own image."""


def get_sandbox(name: str = "auto") -> Sandbox:
    """Return the backend ``name``, or with ``auto`` the first of :data:`AUTO_ORDER` that works here.

    Raises :class:`~redtier.errors.UnknownNameError` for a name that is not
    registered and :class:`~redtier.errors.SandboxError`, with the fix, when
    the backend (or, with ``auto``, every candidate) is unavailable.
    """
    if name != "auto":
        if name not in SANDBOXES:
            raise UnknownNameError("sandbox", name, ["auto", *SANDBOXES.names()])
        sandbox = SANDBOXES.get(name)()
        availability = sandbox.availability()
        if not availability.ok:
            raise SandboxError(
                f"The {name} sandbox is not available: {availability.problem}. Fix: {availability.fix}."
            )
        logger.info("Using the %s sandbox, as requested", name)
        return sandbox
    problems: list[str] = []
    for candidate in AUTO_ORDER:
        sandbox = SANDBOXES.get(candidate)()
        availability = sandbox.availability()
        if availability.ok:
            logger.info(
                "Using the %s sandbox: the first available of %s", candidate, ", ".join(AUTO_ORDER)
            )
            if availability.gaps:
                logger.warning(
                    "The %s sandbox isolates less: %s", candidate, "; ".join(availability.gaps)
                )
            return sandbox
        logger.info("Skipping the %s sandbox: %s", candidate, availability.problem)
        problems.append(f"{candidate}: {availability.problem} (fix: {availability.fix})")
    raise SandboxError(
        "No sandbox backend works here. "
        + "; ".join(problems)
        + ". `redtier doctor` shows details."
    )


def grant_write(sandbox: Sandbox, path: Path) -> None:
    """Let ``sandbox``'s user write into the existing folder ``path`` (see :meth:`Sandbox.grant_write`)."""
    sandbox.grant_write(Path(path))


def make_workdir(sandbox: Sandbox, prefix: str = "redtier-work-") -> Path:
    """Create a new folder under the system temporary folder that ``sandbox`` can use as ``writable``.

    The caller deletes it when done (``shutil.rmtree``).
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    sandbox.grant_write(folder)
    return folder
