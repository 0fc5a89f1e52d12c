"""Which process is running a run, so a run whose process died can be told from one in progress.

A scan killed with SIGKILL, or lost with its machine, cannot record that it
stopped, and its run would stay ``running`` for ever. Each run in progress
records its owner (host, pid and the process's start time, which tells a
reused pid apart); a run on this host whose owner no longer exists was
abandoned.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

OWNER_FACT = "owner"
"""The key of the owner in a run's facts."""


def current_owner() -> dict[str, Any]:
    """Return this process's identity as a run's owner."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}


def is_abandoned(owner: object) -> bool:
    """Return True when ``owner`` names a process on this host that no longer runs.

    An owner on another host, or one recorded in an unknown shape, is never
    called abandoned: only the host that ran it can tell.
    """
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    started = _start_time(pid)
    return started is None or started != owner.get("started")


def live_pid_elsewhere(owner: object) -> int | None:
    """Return the pid of ``owner`` when it is another process on this host that still runs."""
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return None
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or is_abandoned(owner):
        return None
    return pid


def _start_time(pid: int) -> int | None:
    """Return the start time of process ``pid`` in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after it are plain.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])
