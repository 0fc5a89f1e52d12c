"""Running a sandboxed process to the end: capped output, the wall timeout, tree kill and clean-up."""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from redtier.sandbox._base import SandboxRun
from redtier.sandbox._cgroups import CgroupSet, CgroupStats
from redtier.sandbox._limits import Limits

logger = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
IDLE_POLL_S = 0.1
"""How often a quiet run checks whether its process exited while descendants still hold its pipes."""
DRAIN_S = 2.0
"""Seconds to keep reading output after the tree was killed, for what it wrote before."""

MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")
PROCESS_MARKERS = (
    "BlockingIOError",
    "Resource temporarily unavailable",
    "Cannot fork",
    "can't fork",
    "fork: retry",
)
FILE_SIZE_MARKERS = ("File too large",)
"""Messages that the payload's stderr shows when a limit refused it a request, not a signal."""

SIGNAL_EXIT_BASE = 128
MAX_SIGNAL = 64

StatusDecoder = Callable[[int], tuple[int | None, int | None]]
"""Turns a backend's return code into (exit code, signal number)."""


class Teardown:
    """The processes to kill and the folders to delete when a sandboxed process ends or times out."""

    def __init__(
        self,
        cgroups: CgroupSet | None = None,
        folders: Sequence[Path] = (),
        stop: Callable[[], None] | None = None,
    ) -> None:
        self.cgroups = cgroups
        self.folders = list(folders)
        self.stop = stop
        """Stops what killing local processes cannot, such as a Docker container."""
        self.finished = False

    @property
    def stats(self) -> CgroupStats:
        """The cgroup counters, filled in by :meth:`finish`."""
        return self.cgroups.stats if self.cgroups is not None else CgroupStats()

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process, its process group and every process in its cgroups."""
        if self.stop is not None:
            self.stop()
        self._kill_local(process)

    def finish(self, process: subprocess.Popen[bytes]) -> None:
        """Kill what the finished process left behind and delete its cgroups and temporary folders."""
        if self.finished:
            return
        self.finished = True
        self._kill_local(process)
        self.release()

    def release(self) -> None:
        """Delete the cgroups and temporary folders (also when the process never started)."""
        if self.cgroups is not None:
            self.cgroups.remove()
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)

    def _kill_local(self, process: subprocess.Popen[bytes]) -> None:
        if self.cgroups is not None:
            self.cgroups.kill_all()
        try:
            # The backends start the process as the leader of a new session and
            # group. While any member lives the kernel does not reuse its pid.
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if process.returncode is None:
            try:
                process.kill()
            except ProcessLookupError:
                pass


class SandboxProcess(subprocess.Popen[bytes]):
    """A sandboxed process; once it is reaped, whatever it left running is killed and its cgroups removed."""

    def __init__(
        self, args: Sequence[str], *, teardown: Teardown, decode: StatusDecoder, **kwargs: Any
    ) -> None:
        self.teardown = teardown
        self.decode_status = decode
        super().__init__(args, **kwargs)

    def kill_tree(self) -> None:
        """Kill the process and every descendant, including ones that left its session."""
        self.teardown.kill(self)

    def wait(self, timeout: float | None = None) -> int:
        returncode = super().wait(timeout)
        self.teardown.finish(self)
        return returncode

    def poll(self) -> int | None:
        returncode = super().poll()
        if returncode is not None:
            self.teardown.finish(self)
        return returncode


class _Pump:
    """Feeds stdin and collects stdout and stderr without threads, keeping at most ``cap`` bytes each."""

    def __init__(self, process: SandboxProcess, input_bytes: bytes | None, cap: int) -> None:
        self.process = process
        self.cap = cap
        self.selector = selectors.DefaultSelector()
        self.output: dict[int, bytearray] = {}
        self.overflow = False
        self.pending = memoryview(input_bytes or b"")
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                os.set_blocking(stream.fileno(), False)
                self.output[stream.fileno()] = bytearray()
                self.selector.register(stream.fileno(), selectors.EVENT_READ)
        if process.stdin is not None:
            if self.pending:
                os.set_blocking(process.stdin.fileno(), False)
                self.selector.register(process.stdin.fileno(), selectors.EVENT_WRITE)
            else:
                process.stdin.close()

    def run_until(self, deadline: float) -> bool:
        """Move data until the pipes close and the process exits. Return False at ``deadline``."""
        while self.selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            events = self.selector.select(min(remaining, IDLE_POLL_S))
            for key, _ in events:
                self._handle(int(key.fd))
            if not events:
                # Reaping the process also kills what it left running, which closes the pipes.
                self.process.poll()
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        return True

    def _handle(self, fd: int) -> None:
        if fd not in self.output:
            self._write(fd)
            return
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            self.selector.unregister(fd)
            return
        kept = self.output[fd]
        room = self.cap - len(kept)
        if len(chunk) > room:
            self.overflow = True
        kept += chunk[: max(room, 0)]

    def _write(self, fd: int) -> None:
        try:
            written = os.write(fd, self.pending[:READ_CHUNK])
        except BlockingIOError:
            return
        except (BrokenPipeError, OSError):
            written = len(self.pending)
        self.pending = self.pending[written:]
        if not self.pending:
            self.selector.unregister(fd)
            assert self.process.stdin is not None
            self.process.stdin.close()

    def text(self, stream: Any) -> str:
        """Return what was kept of ``stream`` (the process's stdout or stderr), decoded as UTF-8."""
        if stream is None:
            return ""
        return bytes(self.output.get(stream.fileno(), b"")).decode("utf-8", "replace")

    def close(self) -> None:
        """Release the selector; the pipes are closed by :meth:`subprocess.Popen.__exit__`."""
        self.selector.close()


def run_to_completion(
    process: SandboxProcess, limits: Limits, input_bytes: bytes | None
) -> SandboxRun:
    """Feed ``input_bytes``, collect output, enforce the wall timeout and describe how the run ended."""
    start = time.monotonic()
    with process:
        pump = _Pump(process, input_bytes, limits.max_output_bytes)
        timed_out = not pump.run_until(start + limits.wall_timeout_s)
        if timed_out:
            logger.info(
                "Sandboxed process %d passed its %.1f s wall timeout, so its tree is killed",
                process.pid,
                limits.wall_timeout_s,
            )
            process.kill_tree()
            pump.run_until(time.monotonic() + DRAIN_S)
        returncode = process.wait()
        wall_s = time.monotonic() - start
        stdout, stderr = pump.text(process.stdout), pump.text(process.stderr)
        pump.close()
    exit_code, signal_number = process.decode_status(returncode)
    hit = limits_hit(timed_out, signal_number, stderr, process.teardown.stats, pump.overflow)
    return SandboxRun(
        exit_code=exit_code,
        signal=signal_number,
        stdout=stdout,
        stderr=stderr,
        wall_s=wall_s,
        timed_out=timed_out,
        limits_hit=hit,
    )


def limits_hit(
    timed_out: bool, signal_number: int | None, stderr: str, stats: CgroupStats, overflow: bool
) -> tuple[str, ...]:
    """Name the limits a finished run ran into.

    Signals (SIGXCPU, SIGXFSZ) and cgroup counters (OOM kills, pids.max hits)
    are facts. The stderr markers are a guess from the payload's own output,
    which is how a refused allocation or fork shows when the payload survives
    it (Python ignores SIGXFSZ and raises ``OSError: File too large``), and
    which an untrusted payload can also fake.
    """
    hit: list[str] = []
    if timed_out:
        hit.append("wall_timeout")
    if signal_number == signal.SIGXCPU:
        hit.append("cpu")
    if signal_number == signal.SIGXFSZ or any(marker in stderr for marker in FILE_SIZE_MARKERS):
        hit.append("file_size")
    if stats.oom_kills or any(marker in stderr for marker in MEMORY_MARKERS):
        hit.append("memory")
    if stats.pids_max_hits or any(marker in stderr for marker in PROCESS_MARKERS):
        hit.append("processes")
    if overflow:
        hit.append("output")
    return tuple(hit)


def decode_returncode(returncode: int) -> tuple[int | None, int | None]:
    """Decode a :class:`subprocess.Popen` return code: negative means killed by that signal."""
    if returncode < 0:
        return None, -returncode
    return returncode, None


def decode_exit_status(returncode: int) -> tuple[int | None, int | None]:
    """Decode a return code from bwrap or ``docker run``, which exit with 128 + N for signal N.

    NOTE: a payload that exits with status 129 to 192 on its own is reported
    as killed by a signal, because neither tool distinguishes the two.
    """
    if returncode < 0:
        return None, -returncode
    if SIGNAL_EXIT_BASE < returncode <= SIGNAL_EXIT_BASE + MAX_SIGNAL:
        return None, returncode - SIGNAL_EXIT_BASE
    return returncode, None
