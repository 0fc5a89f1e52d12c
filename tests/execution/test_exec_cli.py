"""`redtier exec` as a user runs it: the real command in a subprocess, on the real sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMAND_TIMEOUT_S = 120


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HOME=str(tmp_path / "home"), REDTIER_DB=str(tmp_path / "results.db"), COLUMNS="200")
    env.pop("REDTIER_CATALOG", None)
    return env


def redtier_exec(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redtier", "exec", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )


def test_exec_prints_attempts(cli_env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "steal.py"
    script.write_text(
        "print('working')\ntry:\n    open('/etc/shadow').read()\nexcept OSError:\n    pass\n"
    )
    result = redtier_exec(cli_env, str(script))
    assert result.returncode == 0, result.stderr
    assert "What the code tried to do" in result.stdout
    assert "read of a credential file: /etc/shadow" in result.stdout
    assert "blocked" in result.stdout
    assert "Outcome: exit status 0" in result.stdout
    assert "working" in result.stdout


def test_exec_json_for_shell(cli_env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "attack.txt"
    script.write_text("#!/bin/sh\nkill -9 $PPID\necho survived\n")
    result = redtier_exec(cli_env, str(script), "--sandbox", "process", "--timeout", "5", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["language"] == "shell", result.stdout
    assert report["sandbox"] == "process"
    assert report["limits"]["wall_timeout_s"] == 5.0
    assert report["stdout"] == "survived\n", result.stdout
    kills = [
        item for item in report["behaviours"] if "SIGKILL to the parent process" in item["detail"]
    ]
    assert kills, report["behaviours"]
    assert kills[0]["behaviour"] == "escape"
    assert kills[0]["blocked"]


def test_exec_timeout_still_succeeds(cli_env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "hang.sh"
    script.write_text("sleep 1000\n")
    result = redtier_exec(cli_env, str(script), "--timeout", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["timed_out"] is True
    assert "wall_timeout" in report["limits_hit"]


def test_exec_missing_file(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = redtier_exec(cli_env, str(tmp_path / "absent.py"))
    assert result.returncode == 2
    assert "absent.py not found" in result.stderr


@pytest.mark.parametrize(
    ("flags", "messages"),
    [
        (("--language", "ruby"), ("Unknown language 'ruby'",)),
        (("--sandbox", "jail"), ("Unknown sandbox 'jail'", "Known: auto, bwrap, docker, process.")),
        (("--sandbox", "none"), ("always runs code in a sandbox",)),
        # An infinite or huge --timeout would switch the wall timeout off.
        (("--timeout", "inf"), ("--timeout",)),
        (("--timeout", "1e9"), ("--timeout",)),
    ],
)
def test_exec_bad_flag_rejected(
    cli_env: dict[str, str], tmp_path: Path, flags: tuple[str, ...], messages: tuple[str, ...]
) -> None:
    script = tmp_path / "code.py"
    script.write_text("print(1)\n")
    result = redtier_exec(cli_env, str(script), *flags)
    assert result.returncode == 2
    for message in messages:
        assert message in result.stderr
