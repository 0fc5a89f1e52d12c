"""The job queue on a real SQLite file: order, aging, eligibility, leases and cancelling."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

import redtier.queue
from redtier.errors import ConfigError
from redtier.queue import JobQueue, JobState, LeaseStatus, size_penalty

T0 = 1_800_000_000.0
"""A fixed submission time, so aging is computed from known waits."""


@pytest.fixture
def queue(db_path: Path) -> JobQueue:
    result = JobQueue(f"sqlite:///{db_path}")
    yield result
    result.close()


def add(
    queue: JobQueue,
    *,
    priority: int = 0,
    minutes: float = 1.0,
    at: float = T0,
    tier: str = "cpu_small",
    eligible: tuple[str, ...] = ("cpu_small",),
) -> str:
    """Queue a job estimated to take ``minutes``, submitted at ``at``; return its id."""
    job = queue.submit(
        model="m",
        options={"model": "m"},
        priority=priority,
        tier=tier,
        precision="fp32",
        eligible_tiers=eligible,
        planned=4,
        estimated_s=minutes * 60,
        estimated_usd=0.0,
        now=at,
    )
    return job.id


def take_all(queue: JobQueue, tier: str = "cpu_small", at: float = T0) -> list[str]:
    taken = []
    while (job := queue.take(tier, "w", lease_s=60, now=at)) is not None:
        taken.append(job.id)
    return taken


def test_public_names_are_pinned() -> None:
    assert sorted(redtier.queue.__all__) == sorted(
        [
            "DEFAULT_AGING_S",
            "DEFAULT_MAX_TAKES",
            "FINAL_STATES",
            "JobNotFoundError",
            "JobQueue",
            "JobRow",
            "JobState",
            "LeaseKeeper",
            "LeaseStatus",
            "Worker",
            "WorkerOptions",
            "default_worker_name",
            "size_penalty",
            "submit_scan",
        ]
    )


def test_higher_priority_first(queue: JobQueue) -> None:
    low, high, middle = add(queue, priority=0), add(queue, priority=5), add(queue, priority=2)
    assert take_all(queue) == [high, middle, low]


def test_small_job_before_large_at_same_priority(queue: JobQueue) -> None:
    large = add(queue, minutes=60)
    small = add(queue, minutes=1, at=T0 + 60)
    assert take_all(queue, at=T0 + 120) == [small, large]


def test_equal_jobs_run_in_submission_order(queue: JobQueue) -> None:
    first, second = add(queue, at=T0), add(queue, at=T0 + 1)
    assert take_all(queue, at=T0 + 2) == [first, second]


def test_waiting_outranks_a_higher_priority(queue: JobQueue) -> None:
    old = add(queue, priority=0, at=T0)
    new = add(queue, priority=1, at=T0 + 700)
    assert take_all(queue, at=T0 + 700) == [old, new]


def test_large_job_not_starved(queue: JobQueue) -> None:
    large = add(queue, minutes=60, at=T0)
    bound = queue.aging_s * (size_penalty(3600) - size_penalty(60))
    taken_at = None
    for minute in range(1, 120):
        now = T0 + minute * 60
        add(queue, minutes=1, at=now)
        job = queue.take("cpu_small", "w", lease_s=60, now=now)
        assert job is not None and job.lease_token
        queue.finish(job.id, job.lease_token, JobState.COMPLETED)
        if job.id == large:
            taken_at = minute * 60
            break
    assert taken_at is not None
    assert 60 < taken_at <= bound + 60, "small jobs go first, but only for a bounded time"


def test_score_matches_the_documented_rule(queue: JobQueue) -> None:
    job = queue.get(add(queue, priority=3, minutes=15))
    assert queue.score(job, now=T0 + 1200) == pytest.approx(3 - size_penalty(900) + 2)
    assert size_penalty(60) == pytest.approx(1.0)
    assert size_penalty(None) == 0.0


def test_worker_takes_only_jobs_its_tier_fits(queue: JobQueue) -> None:
    gpu_only = add(queue, priority=9, tier="gpu_large", eligible=("gpu_large",))
    both = add(queue, priority=0, tier="cpu_small", eligible=("cpu_small", "gpu_large"))
    assert take_all(queue, "cpu_small") == [both]
    assert take_all(queue, "gpu_large") == [gpu_only]


def test_worker_prefers_jobs_routed_to_its_tier(queue: JobQueue) -> None:
    elsewhere = add(queue, priority=5, tier="cpu_small", eligible=("cpu_small", "gpu_large"))
    routed_here = add(queue, priority=0, tier="gpu_large", eligible=("gpu_large",))
    assert take_all(queue, "gpu_large") == [routed_here, elsewhere]


def test_second_queue_cannot_take_a_taken_job(queue: JobQueue, db_path: Path) -> None:
    add(queue)
    other = JobQueue(f"sqlite:///{db_path}")
    try:
        assert queue.take("cpu_small", "a", lease_s=60, now=T0) is not None
        assert other.take("cpu_small", "b", lease_s=60, now=T0 + 1) is None
    finally:
        other.close()


def _take_until_empty(url: str, name: str, results: multiprocessing.Queue) -> None:
    queue = JobQueue(url)
    taken = []
    while (job := queue.take("cpu_small", name, lease_s=600)) is not None:
        taken.append(job.id)
    queue.close()
    results.put(taken)


def test_processes_racing_never_take_the_same_job(queue: JobQueue) -> None:
    ids = {add(queue, at=T0 + i) for i in range(60)}
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    workers = [
        context.Process(target=_take_until_empty, args=(queue.url, f"w{i}", results))
        for i in range(3)
    ]
    for process in workers:
        process.start()
    taken = [results.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(timeout=60)
    flat = [job_id for batch in taken for job_id in batch]
    assert len(flat) == len(set(flat)), "a job was taken twice"
    assert set(flat) == ids
    assert all(queue.get(job_id).takes == 1 for job_id in ids)


def test_expired_lease_is_taken_over(queue: JobQueue) -> None:
    job_id = add(queue)
    first = queue.take("cpu_small", "a", lease_s=5, now=T0)
    assert first is not None and first.lease_token
    assert queue.take("cpu_small", "b", lease_s=5, now=T0 + 4) is None
    second = queue.take("cpu_small", "b", lease_s=5, now=T0 + 6)
    assert second is not None
    assert second.id == job_id
    assert second.takes == 2
    assert second.lease_owner == "b"
    assert queue.renew(job_id, first.lease_token, 5, now=T0 + 7) is LeaseStatus.LOST
    assert queue.finish(job_id, first.lease_token, JobState.COMPLETED) is False
    assert queue.get(job_id).state == JobState.RUNNING


def test_renewed_lease_is_not_taken_over(queue: JobQueue) -> None:
    job_id = add(queue)
    job = queue.take("cpu_small", "a", lease_s=5, now=T0)
    assert job is not None and job.lease_token
    assert queue.renew(job_id, job.lease_token, 5, now=T0 + 4) is LeaseStatus.HELD
    assert queue.take("cpu_small", "b", lease_s=5, now=T0 + 6) is None


def test_job_failed_after_too_many_expired_leases(db_path: Path) -> None:
    queue = JobQueue(f"sqlite:///{db_path}", max_takes=2)
    try:
        job_id = add(queue)
        assert queue.take("cpu_small", "a", lease_s=5, now=T0) is not None
        assert queue.take("cpu_small", "b", lease_s=5, now=T0 + 6) is not None
        assert queue.take("cpu_small", "c", lease_s=5, now=T0 + 12) is None
        failed = queue.get(job_id)
        assert failed.state == JobState.FAILED
        assert "lease expired 2 times" in (failed.message or "")
    finally:
        queue.close()


def test_clean_requeues_do_not_count_as_expired_leases(db_path: Path) -> None:
    queue = JobQueue(f"sqlite:///{db_path}", max_takes=2)
    try:
        job_id = add(queue)
        for step in range(4):
            job = queue.take("cpu_small", "a", lease_s=5, now=T0 + step)
            assert job is not None and job.lease_token
            assert queue.finish(job_id, job.lease_token, JobState.INTERRUPTED)
        assert queue.take("cpu_small", "a", lease_s=5, now=T0 + 10) is not None
        retaken = queue.take("cpu_small", "b", lease_s=5, now=T0 + 16)
        assert retaken is not None, "one expired lease must not fail the job"
        assert retaken.takes == 2
    finally:
        queue.close()


def test_cancel_dead_workers_job_on_expiry(queue: JobQueue) -> None:
    job_id = add(queue)
    assert queue.take("cpu_small", "a", lease_s=5, now=T0) is not None
    assert queue.cancel(job_id, now=T0 + 2).state == JobState.RUNNING  # the worker is asked
    assert queue.list_jobs(now=T0 + 4)[0].state == JobState.RUNNING
    [listed] = queue.list_jobs(now=T0 + 6)  # the worker never renewed: it died
    assert listed.state == JobState.CANCELLED
    assert "stopped before it could end the job" in (listed.message or "")
    assert queue.take("cpu_small", "b", lease_s=5, now=T0 + 7) is None


def test_interrupted_job_is_queued_again_with_its_age(queue: JobQueue) -> None:
    job_id = add(queue, at=T0)
    newer = add(queue, at=T0 + 10)
    job = queue.take("cpu_small", "a", lease_s=60, now=T0 + 20)
    assert job is not None
    assert job.id == job_id
    assert job.lease_token
    queue.attach_run(job_id, job.lease_token, "run123")
    assert queue.finish(job_id, job.lease_token, JobState.INTERRUPTED, "worker stopped by SIGTERM")
    assert queue.get(job_id).state == JobState.INTERRUPTED
    again = queue.take("cpu_small", "b", lease_s=60, now=T0 + 30)
    assert again is not None
    assert again.id == job_id, "the interrupted job keeps its place ahead of newer jobs"
    assert again.run_id == "run123"
    assert again.id != newer


def test_cancel_waiting_and_running_jobs(queue: JobQueue) -> None:
    waiting = add(queue, at=T0 + 5)
    running = add(queue, priority=1, at=T0)
    job = queue.take("cpu_small", "a", lease_s=60, now=T0)
    assert job is not None
    assert job.id == running
    assert job.lease_token

    assert queue.cancel(waiting).state == JobState.CANCELLED
    requested = queue.cancel(running, now=T0 + 1)
    assert requested.state == JobState.RUNNING
    assert requested.cancel_requested
    assert queue.renew(running, job.lease_token, 60, now=T0 + 2) is LeaseStatus.CANCEL_REQUESTED
    assert queue.finish(running, job.lease_token, JobState.CANCELLED, "cancelled")
    with pytest.raises(ConfigError, match="already cancelled"):
        queue.cancel(running)


def test_cancel_running_job_whose_worker_died(queue: JobQueue) -> None:
    job_id = add(queue)
    assert queue.take("cpu_small", "a", lease_s=5, now=T0) is not None
    assert queue.cancel(job_id, now=T0 + 10).state == JobState.CANCELLED


def test_listing_shows_running_then_take_order(queue: JobQueue) -> None:
    done = add(queue, priority=9)
    job = queue.take("cpu_small", "a", lease_s=60, now=T0)
    assert job is not None and job.lease_token
    queue.finish(done, job.lease_token, JobState.COMPLETED)
    low, high = add(queue, priority=0), add(queue, priority=3)
    running = add(queue, priority=1)
    assert queue.take("cpu_small", "a", lease_s=60, now=T0 + 1) is not None
    assert queue.get(high).state == JobState.RUNNING
    assert [job.id for job in queue.list_jobs()] == [high, running, low, done]


def test_queue_rejects_other_databases() -> None:
    with pytest.raises(ConfigError, match="needs an SQLite database"):
        JobQueue("postgresql://user@localhost/redtier")
