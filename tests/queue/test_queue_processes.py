"""Real worker processes on the bundled model: sharing a queue, SIGKILL and SIGTERM."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from redtier.catalog import DEFAULT_MODEL
from redtier.queue import JobQueue, JobRow, submit_scan
from redtier.scan import ScanOptions
from redtier.settings import Settings, to_database_url
from redtier.tiers import load_tiers
from redtier.tiers._benchmark import prepare_weights
from tests.queue._queue_support import query, start_redtier, stored_attempts, wait_until

pytestmark = pytest.mark.model

WORKER = ("worker", "--tier", "cpu_small", "--poll", "0.5", "--threads", "1")
"""One generation thread each: two workers with a thread per core each oversubscribe a 2-core runner."""


@pytest.fixture
def database(cli_env: dict[str, str]) -> Path:
    """The database file the subprocesses use, with the bundled model converted beforehand."""
    prepare_weights(DEFAULT_MODEL, Path(cli_env["REDTIER_CACHE_DIR"]))
    return Path(cli_env["REDTIER_DB"])


def submit(database: Path, cache: str, **options: object) -> JobRow:
    settings = Settings(db_url=to_database_url(str(database)), cache_dir=Path(cache))
    queue = JobQueue(settings.db_url)
    try:
        scan = ScanOptions(model=DEFAULT_MODEL, **{"max_new_tokens": 8, **options})
        job, _decision = submit_scan(queue, settings, load_tiers(), scan)
    finally:
        queue.close()
    return job


def job_row(database: Path, job_id: str) -> tuple[str, int, str | None, str | None]:
    state, takes, run_id, message = query(
        database, "SELECT state, takes, run_id, message FROM jobs WHERE id = ?", job_id
    )[0]
    return state, takes, run_id, message


def attempts_of(database: Path, run_id: str) -> list[tuple[str, str]]:
    return query(
        database, "SELECT key, coalesce(output, '') FROM attempts WHERE run_id = ?", run_id
    )


def test_two_workers_share_four_jobs(
    database: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    jobs = [submit(database, cli_env["REDTIER_CACHE_DIR"], limit=4, seed=seed) for seed in range(4)]
    workers = [
        start_redtier(
            cli_env,
            *WORKER,
            "--max-jobs",
            "2",
            "--idle-timeout",
            "300",
            log=tmp_path / f"worker{i}.log",
        )
        for i in range(2)
    ]
    for worker in workers:
        assert worker.wait(timeout=600) == 0, (tmp_path / "worker0.log").read_text() + (
            tmp_path / "worker1.log"
        ).read_text()

    rows = {job.id: job_row(database, job.id) for job in jobs}
    assert all(state == "completed" for state, _, _, _ in rows.values()), rows
    assert all(takes == 1 for _, takes, _, _ in rows.values()), "a job was taken twice"
    owners = Counter(owner for (owner,) in query(database, "SELECT lease_owner FROM jobs"))
    assert sorted(owners.values()) == [2, 2], owners
    run_ids = {run_id for _, _, run_id, _ in rows.values()}
    assert len(run_ids) == 4
    assert query(database, "SELECT count(*) FROM runs") == [(4,)]
    for run_id in run_ids:
        keys = [key for key, _ in attempts_of(database, run_id)]
        assert len(keys) == len(set(keys)) == 4
    assert query(database, "SELECT DISTINCT status FROM runs") == [("completed",)]


def test_killed_worker_is_replaced_and_attempts_stored_once(
    database: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    job = submit(database, cli_env["REDTIER_CACHE_DIR"], limit=16, batch_size=2)
    first = start_redtier(
        cli_env, *WORKER, "--lease", "5", "--max-jobs", "1", log=tmp_path / "first.log"
    )
    try:
        wait_until(lambda: stored_attempts(database) >= 4, timeout=400, what="4 stored attempts")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    state, takes, run_id, _ = job_row(database, job.id)
    assert (state, takes) == ("running", 1), "the killed worker's lease is still on the job"
    assert run_id is not None
    before = attempts_of(database, run_id)
    assert 4 <= len(before) < 16

    second = start_redtier(
        cli_env, *WORKER, "--lease", "5", "--max-jobs", "1", log=tmp_path / "second.log"
    )
    assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()

    state, takes, resumed_run, _ = job_row(database, job.id)
    assert (state, takes, resumed_run) == ("completed", 2, run_id)
    after = attempts_of(database, run_id)
    keys = [key for key, _ in after]
    assert len(after) == 16 == job.planned
    assert len(set(keys)) == 16, "an attempt was stored twice"
    assert set(before) <= set(after), "attempts stored before the kill were kept unchanged"
    assert query(database, "SELECT count(*), max(status) FROM runs") == [(1, "completed")]


def test_sigterm_requeues_job_after_attempt_in_hand(
    database: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    job = submit(database, cli_env["REDTIER_CACHE_DIR"], limit=16, batch_size=2)
    log = tmp_path / "worker.log"
    worker = start_redtier(cli_env, *WORKER, "--max-jobs", "1", log=log)
    try:
        wait_until(lambda: stored_attempts(database) >= 2, timeout=400, what="2 stored attempts")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=120) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
    state, _takes, run_id, message = job_row(database, job.id)
    assert state == "interrupted"
    assert "SIGTERM" in (message or "")
    assert run_id is not None
    assert query(database, "SELECT status FROM runs WHERE id = ?", run_id) == [("interrupted",)]
    stored = len(attempts_of(database, run_id))
    assert 2 <= stored < 16
    assert "1 interrupted" in " ".join(log.read_text().split())

    finisher = start_redtier(cli_env, *WORKER, "--once", log=tmp_path / "finisher.log")
    assert finisher.wait(timeout=600) == 0, (tmp_path / "finisher.log").read_text()
    assert job_row(database, job.id)[:3] == ("completed", 1, run_id)  # a clean requeue is not counted
    keys = [key for key, _ in attempts_of(database, run_id)]
    assert len(keys) == len(set(keys)) == 16
