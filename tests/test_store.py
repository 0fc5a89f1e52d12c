from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from redtier.errors import RunNotFoundError, StoreError
from redtier.store import AttemptRow, Store, utcnow


def make_attempt(run_id: str, key: str, verdict: str = "resisted", seq: int = 0) -> AttemptRow:
    return AttemptRow(
        run_id=run_id,
        key=key,
        seq=seq,
        probe_id="harmful.example",
        category="harmful",
        transform=None,
        goal="goal",
        system_prompt=None,
        prompt="prompt",
        output="output",
        verdict=verdict,
        score=0.1,
        confidence=0.8,
        explanation="explanation",
        detector_results=[{"detector": "refusal", "score": 0.9, "evidence": ["I can't"]}],
        tokens_in=3,
        tokens_out=1,
        latency_s=0.01,
        error=None,
        created_at=utcnow(),
    )


def test_run_and_attempts_round_trip(store: Store, db_path: Path) -> None:
    run = store.create_run("m", {"limit": 2}, {"redtier": "x"}, planned=2)
    assert store.add_attempt(make_attempt(run.id, "a/0/none", "vulnerable", seq=0))
    assert store.add_attempt(make_attempt(run.id, "a/1/none", seq=1))
    store.set_status(run.id, "completed")

    reopened = Store(f"sqlite:///{db_path}")
    stored = reopened.get_run(run.id)
    assert stored.status == "completed"
    assert stored.finished_at is not None
    assert stored.options == {"limit": 2}
    assert reopened.done_keys(run.id) == {"a/0/none", "a/1/none"}
    assert [row.verdict for row in reopened.iter_attempts(run.id, "vulnerable")] == ["vulnerable"]
    assert reopened.verdict_counts(run.id) == {("harmful", "vulnerable"): 1, ("harmful", "resisted"): 1}


def test_duplicate_attempt_key_is_kept_once(store: Store) -> None:
    run = store.create_run("m", {}, {}, planned=1)
    assert store.add_attempt(make_attempt(run.id, "a/0/none"))
    assert not store.add_attempt(make_attempt(run.id, "a/0/none"))
    assert store.count_attempts(run.id) == 1


def test_run_found_by_unique_prefix(store: Store) -> None:
    run = store.create_run("m", {}, {}, planned=0)
    assert store.get_run(run.id[:5]).id == run.id
    with pytest.raises(RunNotFoundError, match="redtier runs"):
        store.get_run("zzzz")


def test_locked_database_reports_lock(db_path: Path) -> None:
    store = Store(f"sqlite:///{db_path}", busy_timeout_s=0.2)
    run = store.create_run("m", {}, {}, planned=1)
    blocker = sqlite3.connect(db_path)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked by another process"):
            store.add_attempt(make_attempt(run.id, "a/0/none"))
    finally:
        blocker.rollback()
        blocker.close()
    assert store.add_attempt(make_attempt(run.id, "a/0/none"))


def test_read_only_database_keeps_results(db_path: Path) -> None:
    store = Store(f"sqlite:///{db_path}")
    run = store.create_run("m", {}, {}, planned=2)
    store.add_attempt(make_attempt(run.id, "a/0/none"))
    store.close()
    # A read-only open behaves the same for root, who ignores file permissions.
    readonly = Store(f"sqlite:///file:{db_path}?mode=ro&uri=true")
    assert readonly.count_attempts(run.id) == 1
    with pytest.raises(StoreError, match="read-only"):
        readonly.add_attempt(make_attempt(run.id, "a/1/none"))
    assert Store(f"sqlite:///{db_path}").count_attempts(run.id) == 1


def test_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not SQLite pages " * 100)
    with pytest.raises(StoreError, match="not a valid SQLite database"):
        Store(f"sqlite:///{path}")
    assert path.read_text().startswith("these are not")


def test_processes_open_new_database_together(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "shared.db"
    code = (
        "import sys; from redtier.store import Store; from redtier.queue import JobQueue; "
        "Store(sys.argv[1]); JobQueue(sys.argv[1])"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{path}"], stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    assert Store(f"sqlite:///{path}").list_runs() == []
