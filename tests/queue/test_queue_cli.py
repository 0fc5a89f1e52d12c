"""`redtier submit`, `queue` and `cancel` as real commands on a real database file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redtier.tiers import machine_has_gpu
from tests.queue._queue_support import redtier


def test_submit_lists_and_cancels_jobs(cli_env: dict[str, str]) -> None:
    low = redtier(cli_env, "submit", "--limit", "4", "--max-new-tokens", "8", "--json")
    assert low.returncode == 0, low.stderr
    low_job = json.loads(low.stdout)
    assert low_job["state"] == "queued"
    assert low_job["tier"] == "cpu_small"
    assert low_job["precision"] == "fp32"
    assert low_job["planned"] == 4
    assert low_job["eligible_tiers"] == ["cpu_small", "gpu_small", "gpu_large"]
    assert "lease_token" not in low_job

    high = redtier(cli_env, "submit", "--model", "mistral-7b", "--priority", "5", "--limit", "4")
    assert high.returncode == 0, high.stderr
    assert "on gpu_large at bf16" in high.stdout
    assert "redtier worker --tier gpu_large" in high.stdout

    listed = json.loads(redtier(cli_env, "queue", "--json").stdout)
    assert [job["model"] for job in listed] == ["mistral-7b", "smollm2-135m-instruct"]
    assert listed[0]["score"] > listed[1]["score"]

    table = redtier(cli_env, "queue")
    assert table.returncode == 0, table.stderr
    assert low_job["id"] in table.stdout
    assert "0/4" in table.stdout

    cancelled = redtier(cli_env, "cancel", low_job["id"][:6])
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout
    again = redtier(cli_env, "cancel", low_job["id"])
    assert again.returncode == 2
    assert "already cancelled" in again.stderr
    missing = redtier(cli_env, "cancel", "feedbeef")
    assert missing.returncode == 2
    assert "redtier queue" in missing.stderr


def test_submit_refuses_what_no_tier_fits(cli_env: dict[str, str], tmp_path: Path) -> None:
    catalog = tmp_path / "models.yaml"
    catalog.write_text(
        "models:\n  - name: big\n    source: hub:org/big\n    params: 70000000000\n    context_length: 8192\n",
        encoding="utf-8",
    )
    result = redtier({**cli_env, "REDTIER_CATALOG": str(catalog)}, "submit", "--model", "big")
    assert result.returncode == 2
    assert "No tier fits big" in " ".join(result.stderr.split())
    listed = json.loads(redtier(cli_env, "queue", "--json").stdout)
    assert listed == []


def test_submit_rejects_unknown_tier(cli_env: dict[str, str]) -> None:
    result = redtier(cli_env, "submit", "--tier", "gpu_smal")
    assert result.returncode == 2
    assert "Did you mean: gpu_small" in result.stderr


def test_submit_rejects_an_out_of_range_priority(cli_env: dict[str, str]) -> None:
    result = redtier(cli_env, "submit", "--priority", "99999999999999999999999")
    assert result.returncode == 2
    assert "--priority" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(
    machine_has_gpu(), reason="this machine has a GPU, so a GPU tier's worker may start"
)
def test_gpu_tier_worker_refused_without_a_gpu(cli_env: dict[str, str]) -> None:
    result = redtier(cli_env, "worker", "--tier", "gpu_small", "--once")
    assert result.returncode == 2
    assert "Tier gpu_small runs on a GPU" in " ".join(result.stderr.split())


def test_worker_rejects_an_unknown_sandbox_before_taking_a_job(cli_env: dict[str, str]) -> None:
    submitted = redtier(cli_env, "submit", "--limit", "2", "--json")
    assert submitted.returncode == 0, submitted.stderr
    result = redtier(cli_env, "worker", "--tier", "cpu_small", "--once", "--sandbox", "bwarp")
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "bwarp" in message and "bwrap" in message, message
    [job] = json.loads(redtier(cli_env, "queue", "--json").stdout)
    assert job["state"] == "queued", "the job stays queued for a correctly configured worker"


def test_worker_unknown_sandbox_lists_none(cli_env: dict[str, str]) -> None:
    result = redtier(cli_env, "worker", "--tier", "cpu_small", "--once", "--sandbox", "bogus")
    assert result.returncode == 2
    assert "Known: auto, bwrap, docker, none, process." in " ".join(result.stderr.split())


def test_queue_creates_a_missing_database_folder(cli_env: dict[str, str], tmp_path: Path) -> None:
    database = tmp_path / "not" / "yet" / "results.db"
    env = {**cli_env, "REDTIER_DB": str(database)}
    listed = redtier(env, "queue", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert database.is_file()


def test_queue_names_a_database_folder_it_cannot_create(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    env = {**cli_env, "REDTIER_DB": str(blocker / "results.db")}
    result = redtier(env, "queue")
    assert result.returncode == 2
    assert f"Cannot create the database folder {str(blocker)!r}" in " ".join(result.stderr.split())
