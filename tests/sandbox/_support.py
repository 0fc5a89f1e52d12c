"""Helpers for the sandbox tests: finding the payload's processes on the host, running Python."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path
from typing import Any

from redtier.sandbox import Limits, Sandbox, SandboxRun


def processes_with(marker: str) -> list[int]:
    """Return the pids whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_until_gone(marker: str, timeout_s: float = 5.0) -> list[int]:
    """Wait for every process with ``marker`` in its command line to end, and return the survivors."""
    deadline = time.monotonic() + timeout_s
    survivors = processes_with(marker)
    while survivors and time.monotonic() < deadline:
        time.sleep(0.05)
        survivors = processes_with(marker)
    return survivors


def run_python(sandbox: Sandbox, code: str, limits: Limits, **kwargs: Any) -> SandboxRun:
    """Run ``code`` (dedented) with the sandbox's Python."""
    return sandbox.run(
        [sandbox.python_executable(), "-c", textwrap.dedent(code)], limits=limits, **kwargs
    )
