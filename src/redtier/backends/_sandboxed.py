"""A model backend whose model runs in a sandboxed worker process.

One worker serves a whole scan, so the model loads once. Requests go to the
worker one batch at a time: if the worker crashes, hangs past the batch
timeout or hits a limit, only that batch's attempts are recorded as errors
(with what happened), a new worker starts, and the scan goes on. After
``max_restarts`` failed batches in a row the backend raises, since a model
that cannot serve anything would otherwise loop.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from redtier.backends._base import ChatRequest, Generation, GenerationConfig, ModelBackend
from redtier.backends._checks import check_model_files
from redtier.backends._pipe import LineReader, WorkerDied, kill_tree
from redtier.backends._resolve import check_memory, locate_weights, sha256_of
from redtier.catalog import ModelEntry, Precision, estimate_memory, format_bytes
from redtier.errors import ModelLoadError
import redtier
from redtier.sandbox import Limits, Sandbox, grant_write, python_binds
from redtier.settings import Settings

logger = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000


class WorkerOptions(BaseModel):
    """Limits and supervision settings of the sandboxed model worker."""

    model_config = ConfigDict(frozen=True)

    load_timeout_s: float = Field(default=900.0, gt=0)
    batch_timeout_s: float = Field(default=900.0, gt=0)
    """Wall time allowed for one batch before the worker is killed and its attempts fail."""
    max_restarts: int = Field(default=3, ge=0)
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
        self._sha256 = sha256_of(self._weights)
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: LineReader | None = None
        self._log_path = Path(tempfile.mkstemp(prefix="redtier-worker-", suffix=".log")[1])
        self._facts: dict[str, str] = {}
        self._started = False
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
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt) + len(requests[i].system_prompt or ""))
        failures_in_a_row = 0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            if self._process is None:
                self._spawn()
            answered: set[int] = set()
            try:
                for position, generation in self._ask(requests, batch, config):
                    answered.add(position)
                    yield batch[position], generation
                failures_in_a_row = 0
            except WorkerDied as died:
                reason = self._failure_reason(died)
                logger.warning("Model worker failed during a batch of %d: %s", len(batch), reason)
                self._stop()
                for position, index in enumerate(batch):
                    if position not in answered:
                        yield index, Generation(error=f"model worker failed: {reason}")
                failures_in_a_row += 1
                if failures_in_a_row > self._options.max_restarts:
                    raise ModelLoadError(
                        f"The model worker for {self.name} failed on {failures_in_a_row} batches in a "
                        f"row (last: {reason}). Stored attempts are kept; check the model files."
                    ) from None

    def close(self) -> None:
        self._stop()

    def _ask(
        self, requests: Sequence[ChatRequest], batch: list[int], config: GenerationConfig
    ) -> Iterator[tuple[int, Generation]]:
        assert self._process is not None
        assert self._process.stdin is not None
        assert self._reader is not None
        message = {
            "requests": [requests[i].model_dump() for i in batch],
            "config": config.model_copy(update={"batch_size": len(batch)}).model_dump(),
        }
        try:
            self._process.stdin.write((json.dumps(message) + "\n").encode())
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise WorkerDied(f"could not send the batch: {error}") from None
        deadline = time.monotonic() + self._options.batch_timeout_s
        while True:
            reply = self._reader.read_message(deadline)
            if reply.get("done"):
                return
            yield int(reply["index"]), Generation.model_validate(reply["generation"])

    def _spawn(self) -> None:
        if self._started:
            self.restarts += 1
        self._started = True
        writable = self._settings.cache_dir / "gguf"
        writable.mkdir(parents=True, exist_ok=True)
        grant_write(self._sandbox, writable)
        log = self._log_path.open("ab")
        self._process = self._sandbox.popen(
            [self._sandbox.python_executable(), "-m", "redtier.backends._worker"],
            limits=self._limits,
            binds=[*python_binds(), _package_root(), _bind_path(self._weights)],
            writable=writable,
            env=_worker_env(self._options.threads),
            stderr=log.fileno(),
        )
        log.close()
        assert self._process.stdout is not None and self._process.stdin is not None
        self._reader = LineReader(self._process)
        load = {
            "entry": self.entry.model_dump(mode="json"),
            "weights": str(self._weights),
            "sha256": self._sha256,
            "cache_dir": str(self._settings.cache_dir),
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

    def _stop(self) -> None:
        process, self._process, self._reader = self._process, None, None
        if process is None:
            return
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
