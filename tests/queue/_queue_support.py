"""Helpers for queue tests: run `redtier` in subprocesses and read the database file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def redtier(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m redtier ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "redtier", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def start_redtier(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start `python -m redtier ARGS` with its output in ``log``."""
    with log.open("wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "redtier", *args],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def query(database: Path, sql: str, *params: object) -> list[tuple]:
    """Run a read query on the database file, as a process outside redtier would."""
    with sqlite3.connect(database, timeout=30) as connection:
        return connection.execute(sql, params).fetchall()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.2 s; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stored_attempts(database: Path) -> int:
    """Count stored attempts in every run."""
    return int(query(database, "SELECT count(*) FROM attempts")[0][0])
