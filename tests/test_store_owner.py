"""Runs whose process died are marked interrupted; runs in progress are left alone."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from redtier.errors import ConfigError
from redtier.scan._session import prepare_scan
from redtier.settings import Settings
from redtier.store import Store
from redtier.store._owner import OWNER_FACT, _start_time, current_owner, is_abandoned


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _run_owned_by(store: Store, owner: dict[str, object]) -> str:
    run = store.create_run("m", {}, {}, planned=3)
    store.update_facts(run.id, {OWNER_FACT: owner})
    return run.id


def test_only_runs_of_dead_local_processes_are_marked(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'results.db'}")
    here = socket.gethostname()
    dead = _run_owned_by(store, {"host": here, "pid": _dead_pid(), "started": 1})
    alive = store.create_run("m", {}, {}, planned=3).id
    elsewhere = _run_owned_by(store, {"host": here + "-other", "pid": _dead_pid(), "started": 1})
    reused = _run_owned_by(store, {**current_owner(), "started": -1})
    finished = _run_owned_by(store, {"host": here, "pid": _dead_pid(), "started": 1})
    store.set_status(finished, "completed")
    store.update_facts(finished, {OWNER_FACT: {"host": here, "pid": _dead_pid(), "started": 1}})

    assert sorted(store.mark_abandoned_runs()) == sorted([dead, reused])
    assert store.get_run(dead).status == "interrupted"
    assert f"redtier scan --resume {dead}" in (store.get_run(dead).error or "")
    assert store.get_run(reused).status == "interrupted", "a reused pid is a different process"
    assert store.get_run(alive).status == "running"
    assert store.get_run(elsewhere).status == "running", "another host's process cannot be checked"
    assert store.get_run(finished).status == "completed"
    assert store.mark_abandoned_runs() == []


def test_owner_shapes_that_cannot_be_checked_are_not_abandoned() -> None:
    assert not is_abandoned(None)
    assert not is_abandoned("host:1")
    assert not is_abandoned({"host": socket.gethostname(), "pid": "12"})
    assert not is_abandoned(current_owner())


def test_resume_of_live_run_rejected(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'results.db'}")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {"host": socket.gethostname(), "pid": other.pid, "started": _start_time(other.pid)}
        busy = store.get_run(_run_owned_by(store, owner))
        assert store.live_owner_pid(busy) == other.pid
        with pytest.raises(ConfigError, match=f"still being scanned by process {other.pid}"):
            prepare_scan(Settings(db_url=store.location, cache_dir=tmp_path), store, resume=busy.id)
    finally:
        other.kill()
        other.wait()
    assert store.live_owner_pid(store.get_run(busy.id)) is None, "a dead owner no longer blocks"
    own = store.get_run(store.create_run("m", {}, {}, planned=3).id)
    assert store.live_owner_pid(own) is None, "this process may resume its own run"
