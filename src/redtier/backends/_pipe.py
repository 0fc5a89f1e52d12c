"""Read JSON lines from a worker's stdout with a deadline."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from typing import Any


class WorkerDied(Exception):
    """The worker exited, closed its pipe, sent garbage or missed its deadline."""


class LineReader:
    """Buffers a worker's stdout and returns one decoded JSON message at a time."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self._process = process
        self._fd = process.stdout.fileno()
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)

    def read_message(self, deadline: float) -> dict[str, Any]:
        """Return the next message, or raise ``WorkerDied`` on EOF, garbage or the deadline."""
        line = self._read_line(deadline)
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            raise WorkerDied(f"the worker sent a line that is not JSON: {line[:200]!r}") from None
        if not isinstance(message, dict):
            raise WorkerDied(f"the worker sent {type(message).__name__}, not an object")
        return message

    def _read_line(self, deadline: float) -> str:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kill_tree(self._process)
                raise WorkerDied("timed out waiting for the worker")
            if not self._selector.select(timeout=min(remaining, 1.0)):
                continue
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                self._process.wait()
                raise WorkerDied("the worker exited")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", errors="replace")


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """Kill a worker and, when it leads its own process group, everything in that group."""
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signal.SIGKILL)
            return
    except ProcessLookupError:
        return
    process.kill()
