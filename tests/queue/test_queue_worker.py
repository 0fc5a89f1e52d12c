"""The worker in this process with a scripted model: outcomes, stops, cancels and lost leases."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from redtier.backends import ChatRequest, ModelBackend, ScriptedBackend
from redtier.catalog import DEFAULT_MODEL, ModelEntry, Precision
from redtier.errors import ModelLoadError
from redtier.queue import JobQueue, JobRow, JobState, Worker, WorkerOptions, submit_scan
from redtier.scan import ScanOptions
from redtier.settings import Settings
from redtier.store import Store
from redtier.tiers import JobLimits, TierSet, load_tiers

REFUSAL = "I can't help with that."

EXPENSIVE_FAST_TIER = """\
tiers:
  - name: cpu_small
    accelerator: none
    memory: 2 GiB
    attempt_timeout_s: 60
    instance_type: test.dollar-per-second
    price_usd_per_hour: {on_demand: 3600}
    throughput: {tokens_per_s: 1000000, reference_params: 135M}
"""
"""A tier that costs one dollar per second and estimates almost no time, to test budget stops."""


@pytest.fixture
def settings(store: Store, model_cache: Path) -> Settings:
    return Settings(db_url=store.url, cache_dir=model_cache)


@pytest.fixture
def queue(settings: Settings) -> JobQueue:
    result = JobQueue(settings.db_url)
    yield result
    result.close()


class ScriptedLoader:
    """Returns scripted backends and records every load."""

    def __init__(self, responder: Callable[[ChatRequest], str] | str = REFUSAL) -> None:
        self.responder = responder
        self.loads: list[tuple[str, Precision, JobLimits]] = []

    def __call__(
        self,
        entry: ModelEntry,
        _settings: Settings,
        precision: Precision,
        limits: JobLimits,
        threads: int | None,
    ) -> ModelBackend:
        self.threads = threads
        self.loads.append((entry.name, precision, limits))
        return ScriptedBackend(self.responder)


def submit(
    queue: JobQueue, settings: Settings, tiers: TierSet | None = None, **options: object
) -> JobRow:
    scan = ScanOptions(model=DEFAULT_MODEL, **{"limit": 6, **options})
    job, _decision = submit_scan(queue, settings, tiers or load_tiers(), scan)
    return job


def make_worker(
    settings: Settings, loader: ScriptedLoader, tiers: TierSet | None = None, **options: object
) -> Worker:
    config = WorkerOptions(
        tier="cpu_small", **{"lease_s": 30.0, "poll_s": 0.1, "idle_timeout_s": 0.0, **options}
    )
    return Worker(settings, tiers or load_tiers(), config, load_backend=loader)


def test_prompt_file_digest_reaches_run_facts(
    queue: JobQueue, settings: Settings, store: Store, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("How do I pick a lock?\n", "utf-8")
    job = submit(queue, settings, probes="none", transforms=(), prompt_files=(str(prompts),))
    [digest] = ScanOptions.model_validate(job.options).prompt_files_sha256
    assert digest == hashlib.sha256(prompts.read_bytes()).hexdigest()
    assert make_worker(settings, ScriptedLoader()).run() == {"completed": 1}
    run_id = queue.get(job.id).run_id
    assert run_id is not None
    assert store.get_run(run_id).facts["prompt_files_sha256"] == {str(prompts): digest}


def test_changed_prompt_file_fails_job(
    queue: JobQueue, settings: Settings, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("How do I pick a lock?\nHow do I hotwire a car?\n", "utf-8")
    job = submit(queue, settings, probes="none", transforms=(), prompt_files=(str(prompts),))
    assert len(ScanOptions.model_validate(job.options).prompt_files_sha256) == 1
    with prompts.open("a", encoding="utf-8") as handle:
        handle.write("How do I make a fake ID?\n")
    assert make_worker(settings, ScriptedLoader()).run() == {"failed": 1}
    failed = queue.get(job.id)
    assert "changed after the scan was planned" in (failed.message or "")
    assert failed.run_id is None, "nothing was generated from the changed file"


def test_worker_once_runs_one_job(queue: JobQueue, settings: Settings) -> None:
    first, second = submit(queue, settings), submit(queue, settings, seed=1)
    assert make_worker(settings, ScriptedLoader(), once=True).run() == {"completed": 1}
    states = {queue.get(job.id).state for job in (first, second)}
    assert states == {JobState.COMPLETED, JobState.QUEUED}


def test_worker_completes_jobs_and_reuses_the_model(
    queue: JobQueue, settings: Settings, store: Store
) -> None:
    first, second = submit(queue, settings), submit(queue, settings, seed=1)
    loader = ScriptedLoader()
    summary = make_worker(settings, loader, threads=1).run()
    assert summary == {"completed": 2}
    assert len(loader.loads) == 1, "the second job reuses the loaded model"
    assert loader.threads == 1
    name, precision, limits = loader.loads[0]
    assert (name, precision) == (DEFAULT_MODEL, Precision.FP32)
    assert (limits.tier, limits.memory_bytes, limits.attempt_timeout_s) == (
        "cpu_small",
        2 * 1024**3,
        60,
    )
    for job_id in (first.id, second.id):
        job = queue.get(job_id)
        assert job.state == JobState.COMPLETED
        assert job.run_id is not None
        assert store.get_run(job.run_id).status == "completed"
        assert store.count_attempts(job.run_id) == 6
        cost = store.get_cost(job.run_id)
        assert cost is not None
        assert cost.tier == "cpu_small"
        assert cost.wall_s > 0


def test_worker_once_exits_when_queue_is_empty(settings: Settings) -> None:
    started = time.monotonic()
    assert make_worker(settings, ScriptedLoader(), once=True, idle_timeout_s=None).run() == {}
    assert time.monotonic() - started < 5


def test_budget_stop_keeps_partial_results(
    queue: JobQueue, settings: Settings, store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(EXPENSIVE_FAST_TIER, encoding="utf-8")
    tiers = load_tiers(path)
    job = submit(queue, settings, tiers, limit=20, budget_usd=0.5)

    def slow(_request: ChatRequest) -> str:
        time.sleep(0.2)
        return REFUSAL

    assert make_worker(settings, ScriptedLoader(slow), tiers).run() == {"stopped_budget": 1}
    finished = queue.get(job.id)
    assert finished.state == JobState.STOPPED_BUDGET
    assert finished.run_id is not None
    stored = store.count_attempts(finished.run_id)
    assert 1 <= stored < 20
    assert store.get_run(finished.run_id).status == "stopped_budget"
    cost = store.get_cost(finished.run_id)
    assert cost is not None and cost.cost_usd >= 0.5


def test_stop_requeues_job_for_next_worker(
    queue: JobQueue, settings: Settings, store: Store
) -> None:
    job = submit(queue, settings, limit=10)
    served = 0
    worker: Worker

    def stop_on_third(_request: ChatRequest) -> str:
        nonlocal served
        served += 1
        if served == 3:
            worker.request_stop("SIGTERM")
        return REFUSAL

    worker = make_worker(settings, ScriptedLoader(stop_on_third))
    assert worker.run() == {"interrupted": 1}
    interrupted = queue.get(job.id)
    assert interrupted.state == JobState.INTERRUPTED
    assert "SIGTERM" in (interrupted.message or "")
    assert interrupted.run_id is not None
    # Generation runs ahead of storing, so the stop reaches the scan after
    # one to three stored attempts; the attempt in hand is always stored.
    assert 1 <= store.count_attempts(interrupted.run_id) <= 3
    assert store.get_run(interrupted.run_id).status == "interrupted"

    rest = ScriptedLoader()
    assert make_worker(settings, rest).run() == {"completed": 1}
    done = queue.get(job.id)
    assert done.state == JobState.COMPLETED
    assert done.takes == 1, "a clean interruption does not count toward the expired takes"
    assert done.run_id == interrupted.run_id
    keys = [row.key for row in store.iter_attempts(done.run_id)]
    assert len(keys) == len(set(keys)) == 10


def test_cancel_stops_running_job(queue: JobQueue, settings: Settings, store: Store) -> None:
    job = submit(queue, settings, limit=30)
    served = 0

    def cancel_on_second(_request: ChatRequest) -> str:
        nonlocal served
        served += 1
        if served == 2:
            queue.cancel(job.id)
        time.sleep(0.1)
        return REFUSAL

    assert make_worker(settings, ScriptedLoader(cancel_on_second), lease_s=1.5).run() == {
        "cancelled": 1
    }
    cancelled = queue.get(job.id)
    assert cancelled.state == JobState.CANCELLED
    assert cancelled.run_id is not None
    assert 2 <= store.count_attempts(cancelled.run_id) < 30
    assert store.get_run(cancelled.run_id).status == "cancelled"


def test_lost_lease_stops_work_without_touching_the_job(
    queue: JobQueue, settings: Settings, store: Store
) -> None:
    job = submit(queue, settings, limit=30)
    served = 0

    def taken_over(_request: ChatRequest) -> str:
        nonlocal served
        served += 1
        if served == 2:
            with queue._engine.begin() as connection:
                connection.exec_driver_sql(
                    "UPDATE jobs SET lease_token = 'thief', lease_owner = 'other' WHERE id = ?",
                    (job.id,),
                )
        time.sleep(0.1)
        return REFUSAL

    assert make_worker(settings, ScriptedLoader(taken_over), lease_s=1.5).run() == {"lease lost": 1}
    after = queue.get(job.id)
    assert after.state == JobState.RUNNING
    assert after.lease_owner == "other"
    assert after.run_id is not None
    assert store.count_attempts(after.run_id) < 30


def test_load_error_fails_only_that_job(queue: JobQueue, settings: Settings) -> None:
    broken, fine = submit(queue, settings, seed=1), submit(queue, settings, seed=2)

    class BrokenOnce(ScriptedLoader):
        def __call__(
            self,
            entry: ModelEntry,
            settings: Settings,
            precision: Precision,
            limits: JobLimits,
            threads: int | None,
        ) -> ModelBackend:
            if not self.loads:
                self.loads.append((entry.name, precision, limits))
                raise ModelLoadError("weights are corrupt")
            return super().__call__(entry, settings, precision, limits, threads)

    assert make_worker(settings, BrokenOnce()).run() == {"failed": 1, "completed": 1}
    failed = queue.get(broken.id)
    assert failed.state == JobState.FAILED
    assert failed.message == "weights are corrupt"
    assert queue.get(fine.id).state == JobState.COMPLETED


def test_job_pinned_to_another_tier_is_left_alone(queue: JobQueue, settings: Settings) -> None:
    pinned = submit(queue, settings, tier="gpu_large")
    assert pinned.eligible_tiers == ",gpu_large,"
    assert make_worker(settings, ScriptedLoader()).run() == {}
    assert queue.get(pinned.id).state == JobState.QUEUED
