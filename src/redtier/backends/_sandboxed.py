"""A model backend whose model runs in a sandboxed worker process.

One worker serves a whole scan, so the model loads once. Requests go to the
worker in windows of up to ``WINDOW_REQUESTS``, which it generates with
continuous batching; the worker reports which requests have entered its batch
and sends each reply as it ends. If the worker crashes, makes no progress
within the batch timeout or hits a limit, the requests that were in its batch
are recorded as errors (with what happened), a new worker starts, and the
requests that had not yet started are sent to it. After ``max_restarts``
failures in a row without a reply in between, the backend raises, since a
model that cannot serve anything would otherwise loop.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

import redtier
from redtier.backends._base import ChatRequest, Generation, GenerationConfig, ModelBackend
from redtier.backends._checks import check_model_files
from redtier.backends._hash_cache import cached_sha256
from redtier.backends._pipe import LineReader, WorkerDied, kill_tree
from redtier.backends._resolve import check_memory, locate_weights
from redtier.backends._runtime import Runtime
from redtier.catalog import ModelEntry, Precision, estimate_memory, format_bytes
from redtier.errors import ModelLoadError, UnwritableFolderError
from redtier.sandbox import Limits, Sandbox, grant_write, python_binds
from redtier.settings import Settings

logger = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000
OMP_WAIT_POLICY = "PASSIVE"
"""OpenMP threads of the worker sleep at barriers instead of spinning, because the scan's own
process judges replies on the same cores and spinning threads take CPU from the thread doing
work. Measured on 2 vCPUs (AMD EPYC, torch 2.13) generating 32 replies of 64 tokens with
2 threads: beside one busy process, 61 tokens/s passive against 34 spinning; on idle cores,
89 against 93."""
PIPE_BYTES = 1024 * 1024
"""Size of the worker's reply pipe, room for about a thousand replies."""
WINDOW_REQUESTS = 1024
"""Requests sent to the worker in one message; it batches continuously within a window."""


class WorkerOptions(BaseModel):
    """Limits and supervision settings of the sandboxed model worker."""

    model_config = ConfigDict(frozen=True)

    load_timeout_s: float = Field(default=900.0, gt=0)
    batch_timeout_s: float = Field(default=900.0, gt=0)
    """Wall time the worker may go without finishing an attempt (at most one batch's work)
    before it is killed and the attempts in its batch fail."""
    max_restarts: int = Field(default=3, ge=0)
    runtime: Runtime = Runtime.TRANSFORMERS
    precision: Precision = Precision.FP32
    threads: int | None = None
    limits: Limits | None = None
    """Sandbox limits; by default sized from the model's memory estimate."""


class SandboxedBackend(ModelBackend):
    """Runs the transformers backend in a worker process inside ``sandbox``."""

    def __init__(self, entry: ModelEntry, settings: Settings, sandbox: Sandbox, options: WorkerOptions):
        self.name = entry.name
        self.entry = entry
        self._settings = settings
        self._sandbox = sandbox
        self._options = options
        self._limits = options.limits or default_worker_limits(entry, options.precision)
        self._weights = locate_weights(entry)
        check_model_files(entry, self._weights)
        self._sha256 = cached_sha256(self._weights, settings.cache_dir)
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: LineReader | None = None
        self._log_path = Path(tempfile.mkstemp(prefix="redtier-worker-", suffix=".log")[1])
        self._facts: dict[str, str] = {}
        self._started = False
        self._failed = False
        self._closed = False
        self.restarts = 0
        """Workers started after the first one, because one failed."""

    @classmethod
    def start(
        cls, entry: ModelEntry, settings: Settings, sandbox: Sandbox, options: WorkerOptions | None = None
    ) -> SandboxedBackend:
        """Check memory and files on the host, then start the worker and wait until the model is loaded."""
        options = options or WorkerOptions()
        check_memory(entry, options.precision)
        backend = cls(entry, settings, sandbox, options)
        backend._spawn()
        return backend

    def describe(self) -> dict[str, str]:
        return {
            **self._facts,
            "sandbox": self._sandbox.describe(),
            "worker_restarts": str(self.restarts),
        }

    def generate_iter(
        self, requests: Sequence[ChatRequest], config: GenerationConfig
    ) -> Iterator[tuple[int, Generation]]:
        pending = deque(sorted(range(len(requests)), key=lambda i: _prompt_chars(requests[i])))
        window_size = WINDOW_REQUESTS
        failures_in_a_row = 0
        while pending and not self._closed:
            window = [pending.popleft() for _ in range(min(window_size, len(pending)))]
            if self._process is None:
                self._spawn()
            progress = _WindowProgress()
            try:
                for position, generation in self._ask(requests, window, config, progress):
                    failures_in_a_row = 0
                    yield window[position], generation
                window_size = WINDOW_REQUESTS
            except WorkerDied as died:
                if self._closed:
                    # close() stopped the worker under a generation still running (Ctrl-C):
                    # the scan is ending, so this is no failure to report or retry.
                    return
                reason = self._failure_reason(died)
                self._stop(failed=True)
                failed, retry = progress.split(len(window), retry_all=len(window) > config.batch_size)
                logger.warning(
                    "Model worker failed with %d requests in its batch (%d sent again): %s",
                    len(failed), len(retry), reason,
                )
                for position in failed:
                    yield window[position], Generation(error=f"model worker failed: {reason}")
                pending.extendleft(window[position] for position in reversed(retry))
                # Until a window succeeds, send one batch at a time, so a failure
                # before any request started costs at most one batch.
                window_size = config.batch_size
                failures_in_a_row += 1
                if failures_in_a_row > self._options.max_restarts:
                    raise ModelLoadError(
                        f"The model worker for {self.name} failed {failures_in_a_row} times in a row "
                        f"(last: {reason}). Stored attempts are kept; check the model files."
                    ) from None
            finally:
                if self._process is not None and not progress.done:
                    # The caller stopped early: the worker is still generating this
                    # window, and its replies must not reach the next call.
                    self._stop(kill=True)

    def close(self) -> None:
        self._closed = True
        self._stop()

    def _ask(
        self,
        requests: Sequence[ChatRequest],
        window: list[int],
        config: GenerationConfig,
        progress: _WindowProgress,
    ) -> Iterator[tuple[int, Generation]]:
        """Send one window; yield ``(position in window, generation)`` as replies arrive.

        The deadline restarts at every message, so the batch timeout bounds the
        time between replies rather than the whole window.
        """
        assert self._process is not None
        assert self._process.stdin is not None
        assert self._reader is not None
        reader = self._reader  # close() may clear the attribute while this window is read
        message = {
            "requests": [requests[i].model_dump() for i in window],
            "config": config.model_dump(),
        }
        try:
            self._process.stdin.write((json.dumps(message) + "\n").encode())
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise WorkerDied(f"could not send the requests: {error}") from None
        while True:
            reply = reader.read_message(time.monotonic() + self._options.batch_timeout_s)
            if reply.get("done"):
                progress.done = True
                return
            if "started" in reply:
                progress.started.update(int(position) for position in reply["started"])
                continue
            position = int(reply["index"])
            progress.replied.add(position)
            yield position, Generation.model_validate(reply["generation"])

    def _spawn(self) -> None:
        if self._started and self._failed:
            self.restarts += 1
        self._started = True
        self._failed = False
        writable = self._settings.cache_dir / "gguf"
        writable.mkdir(parents=True, exist_ok=True)
        grant_write(self._sandbox, writable)
        log = self._log_path.open("ab")
        try:
            self._process = self._sandbox.popen(
                [self._sandbox.python_executable(), "-m", "redtier.backends._worker"],
                limits=self._limits,
                binds=[*python_binds(), _package_root(), _bind_path(self._weights)],
                writable=writable,
                env=_worker_env(self._options.threads),
                stderr=log.fileno(),
            )
        except UnwritableFolderError as error:
            raise ModelLoadError(
                f"The model cache {error.folder} is not writable by the sandbox user (uid "
                f"{error.uid}), because a folder above it is closed to other users, as root's "
                "home is. Give --cache-dir (or REDTIER_CACHE_DIR) a folder outside it, such as "
                "/var/cache/redtier, the default for root."
            ) from None
        finally:
            log.close()
        assert self._process.stdout is not None and self._process.stdin is not None
        _grow_pipe(self._process.stdout.fileno())
        self._reader = LineReader(self._process)
        load = {
            "entry": self.entry.model_dump(mode="json"),
            "weights": str(self._weights),
            "sha256": self._sha256,
            "cache_dir": str(self._settings.cache_dir),
            "runtime": self._options.runtime.value,
            "precision": self._options.precision.value,
            "threads": self._options.threads,
        }
        self._process.stdin.write((json.dumps(load) + "\n").encode())
        self._process.stdin.flush()
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._reader is not None
        try:
            reply = self._reader.read_message(time.monotonic() + self._options.load_timeout_s)
        except WorkerDied as died:
            reason = self._failure_reason(died)
            self._stop()
            raise ModelLoadError(f"The model worker for {self.name} failed while loading: {reason}") from None
        if "fatal" in reply:
            self._stop()
            raise ModelLoadError(f"Model {self.name!r} could not be loaded in the sandbox: {reply['fatal']}")
        self._facts = {str(k): str(v) for k, v in reply.get("facts", {}).items()}

    def _failure_reason(self, died: WorkerDied) -> str:
        process = self._process
        status = ""
        if process is not None and process.poll() is not None:
            code = process.returncode
            status = f" (killed by signal {-code})" if code < 0 else f" (exit status {code})"
            if code in (-signal.SIGKILL, 128 + signal.SIGKILL):
                status += (
                    "; SIGKILL most often means the worker reached its memory limit of "
                    f"{format_bytes(self._limits.memory_bytes)}, and then it needs a tier with more memory"
                )
        tail = _tail(self._log_path)
        return f"{died}{status}" + (f"; worker stderr ends: {tail}" if tail else "")

    def _stop(self, *, failed: bool = False, kill: bool = False) -> None:
        """Stop the worker: close its stdin and wait, or kill it at once with ``kill``."""
        process, self._process, self._reader = self._process, None, None
        self._failed = self._failed or failed
        if process is None:
            return
        if kill:
            kill_tree(process)
        if process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_tree(process)
            process.wait()


class _WindowProgress:
    """Which requests of one window the worker has started and replied to."""

    def __init__(self) -> None:
        self.started: set[int] = set()
        self.replied: set[int] = set()
        self.done = False

    def split(self, size: int, *, retry_all: bool) -> tuple[list[int], list[int]]:
        """Return the positions without a reply to record as failed, and those to send again.

        Requests that had started fail, since one of them may have crashed the
        worker, and the others are sent again. When none had started, all are
        sent again if ``retry_all`` (the window was larger than one batch),
        and otherwise all fail, so that a worker that dies before starting
        anything cannot loop.
        """
        waiting = [position for position in range(size) if position not in self.replied]
        if self.started:
            failed = [position for position in waiting if position in self.started]
            retry = [position for position in waiting if position not in self.started]
            return failed, retry
        if retry_all:
            return [], waiting
        return waiting, []


def _grow_pipe(fd: int) -> None:
    """Enlarge the reply pipe so the worker can run ahead of a caller busy judging replies.

    A full pipe blocks the worker's write, and so its generation. Linux allows
    unprivileged pipes up to ``/proc/sys/fs/pipe-max-size`` (1 MiB by default);
    elsewhere, or above that limit, the default size stays.
    """
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    try:
        fcntl.fcntl(fd, set_size, PIPE_BYTES)
    except OSError as error:
        logger.debug("Could not enlarge the worker's reply pipe: %s", error)


def _prompt_chars(request: ChatRequest) -> int:
    return len(request.prompt) + len(request.system_prompt or "")


def default_worker_limits(entry: ModelEntry, precision: Precision) -> Limits:
    """Size the worker's limits from the model's memory estimate.

    The address-space cap is four times the estimate plus 4 GiB, because
    PyTorch and the OpenMP runtime reserve far more virtual memory than they
    use; the cgroup memory limit, where available, caps real usage.
    """
    need = estimate_memory(entry, precision, batch_size=32)
    return Limits(
        memory_bytes=4 * need + 4 * 1024**3,
        cpu_seconds=24 * 3600,
        max_processes=256,
        file_size_bytes=4 * need + 1024**3,
        open_files=1024,
        wall_timeout_s=24 * 3600,
    )


def _package_root() -> Path:
    """Return the folder that contains the ``redtier`` package (the source tree for editable installs)."""
    return Path(redtier.__file__).resolve().parent.parent


def _bind_path(weights: Path) -> Path:
    return weights.parent if weights.is_file() else weights


def _worker_env(threads: int | None) -> dict[str, str]:
    count = str(threads or os.cpu_count() or 1)
    return {
        "HOME": "/tmp",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": count,
        "OMP_WAIT_POLICY": OMP_WAIT_POLICY,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return " | ".join(lines[-3:])[-STDERR_TAIL_CHARS:]
