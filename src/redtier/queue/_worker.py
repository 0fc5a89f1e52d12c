"""The queue worker: take a job its tier can run, scan under a renewed lease, record the outcome.

A worker runs every scan through ``prepare_scan`` and ``run_prepared``, the
path ``redtier scan`` uses, resuming the job's run when an earlier worker
started it. Models load through the worker's loader only: by default
:func:`sandboxed_loader`, which runs the model in a sandbox capped by the tier.

Stopping. :meth:`Worker.request_stop` (wired to SIGTERM by the CLI) lets the
attempt in hand be stored, records the job as ``interrupted`` (waiting for
another worker) and makes :meth:`Worker.run` return. A killed worker leaves
its lease to expire, and the next worker resumes the run from its stored
attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from redtier.backends import ModelBackend, default_worker_limits
from redtier.catalog import QUANTIZED, ModelEntry, Precision, format_bytes
from redtier.errors import RedtierError
from redtier.queue._lease import LeaseKeeper
from redtier.queue._queue import JobQueue, default_worker_name
from redtier.queue._schema import JobRow, JobState
from redtier.sandbox import get_sandbox
from redtier.scan import (
    NO_SANDBOX,
    PreparedScan,
    ScanOptions,
    ScanOutcome,
    StopScan,
    check_model_sandbox,
    load_backend,
    prepare_scan,
    run_prepared,
)
from redtier.settings import Settings
from redtier.store import AttemptRow, RunRow, Store
from redtier.tiers import (
    STOPPED_BUDGET,
    CostMeter,
    JobLimits,
    ScanShape,
    Tier,
    TierFit,
    TierSet,
    check_runs_here,
    fit_tier,
)

logger = logging.getLogger(__name__)

CANCELLED_STATUS = "cancelled"
INTERRUPTED_STATUS = "interrupted"

BATCH_ROWS_FOR_TIMEOUT = 32
"""Rows whose attempt timeouts add up to the wall time one batch may take (the default batch size)."""

BackendLoader = Callable[[ModelEntry, Settings, Precision, JobLimits, int | None], ModelBackend]


def sandboxed_loader(sandbox: str) -> BackendLoader:
    """Return the loader a worker uses: the model runs in a worker inside ``sandbox``,
    capped by the job's tier.

    The tier's memory becomes the worker's resident-memory limit (the cgroup
    limit where cgroups are writable), and its attempt timeout, times the rows
    of a batch, the wall time a batch may take. ``none`` loads in this process
    with no limit, for debugging only.
    """

    def load(
        entry: ModelEntry,
        settings: Settings,
        precision: Precision,
        limits: JobLimits,
        threads: int | None,
    ) -> ModelBackend:
        worker_limits = limits.apply_to(default_worker_limits(entry, precision))
        logger.info(
            "Loading %s at %s in sandbox %s (tier %s: %s resident memory, %g s per attempt)",
            entry.name,
            precision.value,
            sandbox,
            limits.tier,
            format_bytes(worker_limits.memory_bytes),
            limits.attempt_timeout_s,
        )
        return load_backend(
            entry,
            settings,
            sandbox=sandbox,
            precision=precision,
            threads=threads,
            limits=worker_limits,
            batch_timeout_s=limits.batch_timeout_s(BATCH_ROWS_FOR_TIMEOUT),
        )

    return load


class WorkerOptions(BaseModel):
    """Settings of a worker: its tier, lease, polling and when it exits."""

    model_config = ConfigDict(frozen=True)

    tier: str
    lease_s: float = Field(default=60.0, gt=0)
    """Lease length; the worker renews it every third of this."""
    poll_s: float = Field(default=5.0, gt=0)
    """Wait between looks at an empty queue."""
    max_jobs: int | None = Field(default=None, ge=1)
    once: bool = False
    """Take at most one job, and exit at once when none is waiting."""
    idle_timeout_s: float | None = Field(default=None, ge=0)
    """Exit after this long without a job to take; None waits for ever."""
    threads: int | None = Field(default=None, ge=1)
    """CPU threads for generation; None uses every core. Workers sharing a machine should split its cores."""
    sandbox: str = "auto"
    """Where models run: a sandbox backend name (see ``redtier doctor``), or ``none`` for in-process."""
    name: str = Field(default_factory=default_worker_name)


class Worker:
    """Takes jobs for one tier until stopped, after ``max_jobs`` jobs, or when idle too long."""

    def __init__(
        self,
        settings: Settings,
        tiers: TierSet,
        options: WorkerOptions,
        *,
        load_backend: BackendLoader | None = None,
    ) -> None:
        self.options = options
        self.tier: Tier = tiers.get(options.tier)
        self.summary: Counter[str] = Counter()
        self._settings = settings
        self._tiers = tiers
        if load_backend is None:
            check_runs_here(
                self.tier,
                "its jobs",
                "Start the worker with --tier cpu_small here, or on a machine with a GPU.",
            )
            # An unknown or unavailable sandbox fails before any job is taken.
            check_model_sandbox(options.sandbox)
            if options.sandbox != NO_SANDBOX:
                get_sandbox(options.sandbox)
            load_backend = sandboxed_loader(options.sandbox)
        self._load = load_backend
        self._store = Store(settings.db_url)
        self._queue = JobQueue(settings.db_url)
        self._stop = threading.Event()
        self._stop_reason = ""
        self._backend: ModelBackend | None = None
        self._backend_key: tuple[str, Precision] | None = None

    def request_stop(self, reason: str) -> None:
        """Stop after the attempt in hand; safe to call from a signal handler."""
        self._stop_reason = reason
        self._stop.set()

    def run(self) -> Counter[str]:
        """Work until stopped; return how many jobs ended in each state."""
        logger.info("Worker %s started on tier %s", self.options.name, self.tier.name)
        taken = 0
        try:
            while not self._stop.is_set():
                if self.options.max_jobs is not None and taken >= self.options.max_jobs:
                    break
                if self.options.once and taken:
                    break
                job = self._wait_for_job()
                if job is None:
                    break
                taken += 1
                self.summary[self._work(job)] += 1
        finally:
            self._close_backend()
            self._queue.close()
            self._store.close()
        logger.info(
            "Worker %s stopped after %d job(s): %s", self.options.name, taken, dict(self.summary)
        )
        return self.summary

    def _wait_for_job(self) -> JobRow | None:
        idle_since = time.monotonic()
        while not self._stop.is_set():
            job = self._queue.take(self.tier.name, self.options.name, self.options.lease_s)
            if job is not None or self.options.once:
                return job
            timeout = self.options.idle_timeout_s
            if timeout is not None and time.monotonic() - idle_since >= timeout:
                logger.info("No job for tier %s in %g s; exiting", self.tier.name, timeout)
                return None
            self._stop.wait(self.options.poll_s)
        return None

    def _work(self, job: JobRow) -> str:
        """Run one job under its lease and record how it ended; return the end state."""
        assert job.lease_token is not None
        state: JobState | None
        with LeaseKeeper(self._queue.url, job.id, job.lease_token, self.options.lease_s) as lease:
            try:
                state, message = self._run_job(job, lease)
            except KeyboardInterrupt:
                self._queue.finish(
                    job.id, job.lease_token, JobState.INTERRUPTED, "interrupted by Ctrl-C"
                )
                raise
            except RedtierError as error:
                logger.warning("Job %s failed: %s", job.id, error)
                state, message = JobState.FAILED, str(error)
            except Exception as error:  # one failed job must not stop the worker
                logger.exception("Job %s failed", job.id)
                state, message = JobState.FAILED, f"{type(error).__name__}: {error}"
        if state is None:
            return "lease lost"
        self._queue.finish(job.id, job.lease_token, state, message)
        logger.info("Job %s %s%s", job.id, state.value, f": {message}" if message else "")
        return state.value

    def _run_job(self, job: JobRow, lease: LeaseKeeper) -> tuple[JobState | None, str | None]:
        assert job.lease_token is not None
        token = job.lease_token
        options = ScanOptions.model_validate(job.options)
        prepared = prepare_scan(self._settings, self._store, options, resume=job.run_id)
        fit = self._fit(job, prepared)
        if not fit.fits or fit.precision is None:
            return (
                JobState.FAILED,
                f"{prepared.entry.name} does not fit tier {self.tier.name}: {fit.reason}",
            )
        meter = CostMeter(
            self._store,
            fit,
            price_kind=self._tiers.policy.price,
            budget_usd=prepared.options.budget_usd,
        )
        backend = self._backend_for(
            prepared.entry, fit.precision, JobLimits.for_job(self.tier, len(prepared.plan))
        )
        if self._stop.is_set():
            return JobState.INTERRUPTED, f"worker stopped by {self._stop_reason} before starting"

        def on_start(run: RunRow, remaining: int) -> None:
            self._queue.attach_run(job.id, token, run.id)
            meter.attach(run.id)
            logger.info(
                "Job %s: run %s, %d of %d attempts to go",
                job.id,
                run.id,
                remaining,
                len(prepared.plan),
            )

        def on_attempt(row: AttemptRow) -> None:
            meter.on_attempt(row)
            self._check_stop(lease)

        try:
            outcome = run_prepared(
                self._store, prepared, backend, on_start=on_start, on_attempt=on_attempt
            )
        finally:
            if not lease.lost.is_set():
                meter.finish()
        return _end_state(outcome)

    def _fit(self, job: JobRow, prepared: PreparedScan) -> TierFit:
        """Check the job against this worker's tier, at the precision it requests if any.

        A job routed to a quantized precision was submitted with quantization
        allowed, so this worker may quantize it too.
        """
        requested = prepared.options.precision
        return fit_tier(
            prepared.entry,
            self.tier,
            ScanShape.from_plan(prepared.plan, prepared.options),
            precision=Precision(requested) if requested else None,
            allow_quantization=self._tiers.policy.allow_quantization
            or Precision(job.precision) in QUANTIZED,
            price=self._tiers.policy.price,
        )

    def _check_stop(self, lease: LeaseKeeper) -> None:
        if lease.lost.is_set():
            raise StopScan(None, "lease lost: another worker has taken the job")
        if lease.cancel_requested.is_set():
            raise StopScan(CANCELLED_STATUS, "cancelled with `redtier cancel`")
        if self._stop.is_set():
            raise StopScan(
                INTERRUPTED_STATUS,
                f"worker stopped by {self._stop_reason}; the job is queued for another worker",
            )

    def _backend_for(
        self, entry: ModelEntry, precision: Precision, limits: JobLimits
    ) -> ModelBackend:
        """Return a loaded backend, reusing the previous job's when model and precision match."""
        key = (entry.name, precision)
        if self._backend is not None and self._backend_key == key:
            return self._backend
        self._close_backend()
        self._backend = self._load(entry, self._settings, precision, limits, self.options.threads)
        self._backend_key = key
        return self._backend

    def _close_backend(self) -> None:
        if self._backend is not None:
            self._backend.close()
        self._backend, self._backend_key = None, None


def _end_state(outcome: ScanOutcome) -> tuple[JobState | None, str | None]:
    """Map how the scan ended to the job's state; None when the lease was lost."""
    stop = outcome.stopped
    if stop is None:
        return JobState.COMPLETED, None
    states = {
        STOPPED_BUDGET: JobState.STOPPED_BUDGET,
        CANCELLED_STATUS: JobState.CANCELLED,
        INTERRUPTED_STATUS: JobState.INTERRUPTED,
    }
    if stop.status is None:
        return None, stop.message
    return states.get(stop.status, JobState.FAILED), stop.message
