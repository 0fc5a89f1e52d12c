"""The real `redtier` command in a subprocess, on the real model and a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture
def cli_env(tmp_path: Path, model_cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=str(tmp_path / "home"),
        REDTIER_DB=str(tmp_path / "results.db"),
        REDTIER_CACHE_DIR=str(model_cache),
        HF_HUB_OFFLINE="1",
        COLUMNS="200",
    )
    env.pop("REDTIER_CATALOG", None)
    return env


def redtier(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redtier", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_models_json_lists_catalog(cli_env: dict[str, str]) -> None:
    result = redtier(cli_env, "models", "--json")
    assert result.returncode == 0, result.stderr
    models = json.loads(result.stdout)
    assert len(models) == 7
    assert set(models[0]["memory_bytes"]) == {"fp32", "bf16", "4bit"}


def test_models_table_shows_memory(cli_env: dict[str, str]) -> None:
    result = redtier(cli_env, "models")
    assert result.returncode == 0, result.stderr
    assert "smollm2-135m-instruct" in result.stdout
    assert "fp32" in result.stdout
    assert "GiB" in result.stdout
    # The bundled GGUF model is converted to fp32, so loading it as bf16 keeps both copies in memory.
    assert "bf16 can need more than fp32" in " ".join(result.stdout.split())


def test_probes_json_has_every_category(cli_env: dict[str, str]) -> None:
    result = redtier(cli_env, "probes", "--json")
    assert result.returncode == 0, result.stderr
    categories = {probe["category"] for probe in json.loads(result.stdout)}
    assert categories == {"prompt_injection", "jailbreak", "harmful", "malicious_code", "prompt_extraction", "over_refusal"}


def test_detectors_json_says_what_judge_accepts(cli_env: dict[str, str]) -> None:
    result = redtier(cli_env, "detectors", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["detector"]: row for row in json.loads(result.stdout)}
    assert set(rows) >= {"refusal", "harmful_compliance", "canary", "llm_judge"}
    assert all(row["scores"] for row in rows.values())
    assert rows["harmful_compliance"]["judge"] == "yes"
    assert rows["refusal"]["judge"] == "reported on every row; decides with --control"
    assert rows["refusal_keywords"]["judge"].startswith("no:")
    assert rows["decoded_payload"]["judge"] == "scan only"

    table = redtier(cli_env, "detectors")
    assert table.returncode == 0, table.stderr
    assert "malicious_code" in table.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("scan", "--model", "gtp2"), "Did you mean: gpt2"),
        (("scan", "--probes", "jailbrek"), "Did you mean: jailbreak"),
        (("scan", "--transforms", "base46"), "Did you mean: base64"),
        (("scan", "--prompts", "/nonexistent/prompts.csv"), "/nonexistent/prompts.csv"),
        (("scan", "--sandbox", "bogus"), "Known: auto, bwrap, docker, none, process."),
        (("scan", "--sandbox", "nnoe"), "Did you mean: none"),
        (("show", "feedbeef"), "redtier runs"),
        (("scan", "--resume", "feedbeef", "--model", "gpt2", "--limit", "3"), "--model, --limit would be ignored"),
    ],
)
def test_bad_names_fail_before_loading(cli_env: dict[str, str], args: tuple[str, ...], expected: str) -> None:
    result = redtier(cli_env, *args, timeout=60)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert "Loading" not in result.stdout


def test_unreachable_hub_names_offline_variable(cli_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    cli_env.pop("HF_HUB_OFFLINE")
    cli_env.update(HF_ENDPOINT=f"http://127.0.0.1:{closed_port}", HF_HOME=str(tmp_path / "hf"))
    result = redtier(cli_env, "scan", "--model", "gpt2", "--limit", "1", timeout=120)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "Hugging Face Hub cannot be reached" in message
    assert "HF_HUB_OFFLINE=1" in message
    assert "local folder or a GGUF file" in message
    assert "Traceback" not in result.stderr


def test_scan_stores_and_reports(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = redtier(cli_env, "scan", "--limit", "12", "--max-new-tokens", "16")
    assert result.returncode == 0, result.stderr
    for category in ("prompt_injection", "jailbreak", "harmful", "malicious_code", "prompt_extraction", "encoding"):
        assert category in result.stdout
    assert "95% CI" in result.stdout
    assert "Over-refusal rate on safe control prompts" in result.stdout
    assert str(tmp_path / "results.db") in result.stdout.replace("\n", "")

    runs = json.loads(redtier(cli_env, "runs", "--json").stdout)
    assert len(runs) == 1
    assert runs[0]["status"] == "completed"
    assert runs[0]["stored"] == 12
    assert runs[0]["facts"]["backend"]["weights_sha256"]

    run_id = runs[0]["id"]
    exported = redtier(cli_env, "export", run_id, "--format", "jsonl")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(lines) == 12
    assert all(line["verdict"] in {"vulnerable", "resisted", "error"} for line in lines if line["category"] != "over_refusal")
    controls = [line for line in lines if line["category"] == "over_refusal"]
    assert controls, "a limited scan still sends over-refusal controls"
    assert all(line["verdict"] in {"over_refused", "answered", "error"} for line in controls)
    assert all(line["detectors"] for line in lines if line["verdict"] != "error")

    shown = redtier(cli_env, "show", run_id[:6])
    assert shown.returncode == 0, shown.stderr
    assert "Attack success rate by category" in shown.stdout

    over_database = redtier(cli_env, "export", run_id, "--output", str(tmp_path / "results.db"))
    assert over_database.returncode == 2
    assert "is the results database" in over_database.stderr
    assert json.loads(redtier(cli_env, "runs", "--json").stdout)[0]["stored"] == 12


def test_killed_scan_resumes_exactly_once(cli_env: dict[str, str], tmp_path: Path) -> None:
    database = tmp_path / "results.db"
    args = ["scan", "--limit", "40", "--max-new-tokens", "24", "--batch-size", "4"]
    process = subprocess.Popen(
        [sys.executable, "-m", "redtier", *args],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        stored_before = _wait_for_attempts(database, at_least=8, timeout=600)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    before = _attempts(database)
    assert len(before) >= stored_before
    assert len(before) < 40
    run_id = _single_value(database, "SELECT id FROM runs")
    assert _single_value(database, "SELECT status FROM runs") == "running"

    listed = redtier(cli_env, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    [run] = json.loads(listed.stdout)
    assert run["status"] == "interrupted", "a run whose process died is not shown as running"
    assert f"redtier scan --resume {run_id}" in _single_value(database, "SELECT error FROM runs")

    result = redtier(cli_env, "scan", "--resume", run_id)
    assert result.returncode == 0, result.stderr
    after = _attempts(database)
    assert len(after) == 40
    assert len({key for key, _ in after}) == 40
    assert set(before) <= set(after)
    assert _single_value(database, "SELECT status FROM runs") == "completed"

    finished = _single_value(database, "SELECT finished_at FROM runs")
    again = redtier(cli_env, "scan", "--resume", run_id)
    assert again.returncode == 0, again.stderr
    assert "nothing to resume" in " ".join(again.stdout.split())
    assert "Loading" not in again.stdout
    assert _single_value(database, "SELECT finished_at FROM runs") == finished


def _attempts(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT key, coalesce(output, '') FROM attempts").fetchall()


def _single_value(database: Path, query: str) -> object:
    with sqlite3.connect(database) as connection:
        return connection.execute(query).fetchone()[0]


def _wait_for_attempts(database: Path, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if database.exists():
            try:
                count = _single_value(database, "SELECT count(*) FROM attempts")
            except sqlite3.OperationalError:
                count = 0
            if isinstance(count, int) and count >= at_least:
                return count
        time.sleep(0.2)
    raise AssertionError(f"fewer than {at_least} attempts stored after {timeout} s")


@pytest.mark.parametrize(
    "args",
    [
        ("scan", "--limit", "0"),
        ("scan", "--max-new-tokens", "-3"),
        ("scan", "--bogus"),
        ("show",),
        ("bogus",),
    ],
)
def test_usage_errors_exit_2_without_traceback(cli_env: dict[str, str], args: tuple[str, ...]) -> None:
    result = redtier(cli_env, *args, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Usage:" in result.stderr


def test_scan_json_writes_only_json(cli_env: dict[str, str]) -> None:
    result = redtier(cli_env, "scan", "--limit", "2", "--max-new-tokens", "4", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["categories"][-1]["attempts"] == 2


def test_interrupt_while_loading_prints_message(cli_env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "redtier", "scan", "--limit", "1", "--sandbox", "none"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        # The warning is logged just before the in-process load starts.
        before = next(line for line in process.stderr if "without a sandbox" in line)
        process.send_signal(signal.SIGINT)
        _, after = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    message = " ".join((before + after).split())
    assert "Interrupted while loading smollm2-135m-instruct" in message
    assert "nothing was stored" in message


def _model_workers() -> set[int]:
    """Return the pids of running sandboxed model workers."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"redtier.backends._worker" in command:
            pids.add(int(entry.name))
    return pids


@pytest.mark.parametrize("sandbox", ["bwrap", "process"])
def test_interrupt_while_loading_stops_the_worker(cli_env: dict[str, str], sandbox: str) -> None:
    earlier = _model_workers()
    process = subprocess.Popen(
        [sys.executable, "-m", "redtier", "scan", "--limit", "1", "--sandbox", sandbox],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _model_workers() - earlier and time.monotonic() < deadline:
            time.sleep(0.05)
        started = _model_workers() - earlier
        assert started, "the model worker never started"
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "Interrupted while loading" in " ".join(errors.split())
    deadline = time.monotonic() + 10
    while started & _model_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not started & _model_workers(), "the worker kept loading after Ctrl-C"


def test_interrupted_scan_exits_130_with_hint(cli_env: dict[str, str], tmp_path: Path) -> None:
    database = tmp_path / "results.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "redtier", "scan", "--limit", "30", "--max-new-tokens", "24", "--batch-size", "2"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_attempts(database, at_least=2, timeout=600)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "redtier scan --resume" in stderr
    assert _single_value(database, "SELECT status FROM runs") == "interrupted"
