"""Choosing a backend, the package's public names, and the doctor command."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import redtier.sandbox
from redtier.cli._doctor import doctor
from redtier.errors import SandboxError, UnknownNameError
from redtier.sandbox import (
    AUTO_ORDER,
    NOBODY_UID,
    SANDBOXES,
    BwrapSandbox,
    Limits,
    ProcessSandbox,
    _local,
    get_sandbox,
    grant_write,
    make_workdir,
)


def test_public_names() -> None:
    assert sorted(redtier.sandbox.__all__) == sorted(
        [
            "AUTO_ORDER",
            "Availability",
            "BwrapSandbox",
            "DockerSandbox",
            "GiB",
            "Limits",
            "MiB",
            "NOBODY_GID",
            "NOBODY_UID",
            "ProcessSandbox",
            "SANDBOXES",
            "Sandbox",
            "SandboxRun",
            "get_sandbox",
            "grant_write",
            "make_workdir",
            "python_binds",
            "readable_by",
        ]
    )


def test_registered_backends() -> None:
    assert SANDBOXES.names() == ["bwrap", "process", "docker"]
    assert "docker" not in AUTO_ORDER


def test_local_backend_works_where_bwrap_is_installed() -> None:
    if not Path("/usr/bin/bwrap").exists():
        pytest.skip("bubblewrap is not installed here")
    reports = {name: SANDBOXES.get(name)().availability() for name in AUTO_ORDER}
    problems = "; ".join(
        f"{name}: {report.problem} (fix: {report.fix})" for name, report in reports.items()
    )
    assert any(report.ok for report in reports.values()), problems


def test_auto_picks_first_available(caplog: pytest.LogCaptureFixture) -> None:
    expected = next((name for name in AUTO_ORDER if SANDBOXES.get(name)().availability().ok), None)
    if expected is None:
        pytest.skip("no local sandbox works here")
    with caplog.at_level(logging.INFO, logger="redtier.sandbox"):
        sandbox = get_sandbox()
    assert sandbox.name == expected
    assert f"Using the {expected} sandbox" in caplog.text


def test_unknown_backend_suggests_names() -> None:
    with pytest.raises(UnknownNameError, match="bwrap"):
        get_sandbox("bwrapp")


def test_unavailable_backend_raises_with_fix() -> None:
    docker = SANDBOXES.get("docker")()
    availability = docker.availability()
    if availability.ok:
        pytest.skip("a Docker engine runs here")
    with pytest.raises(SandboxError, match="Fix:"):
        get_sandbox("docker")


def test_process_backend_says_it_isolates_less() -> None:
    text = ProcessSandbox().describe()
    assert text.startswith("process: ")
    assert "isolates less" in text or "not available" in text


def test_unreadable_interpreter_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to build a path that the sandbox user cannot read")
    hidden = tmp_path / "private" / "python3"
    hidden.parent.mkdir(mode=0o700)
    hidden.write_text("")
    monkeypatch.setattr(_local, "interpreter_paths", lambda: [hidden])
    availability = ProcessSandbox().availability()
    assert not availability.ok
    assert str(hidden) in availability.problem
    assert "rm -rf .venv" in availability.fix


def test_unwritable_workdir_rejected(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("as the calling user every folder it made is writable")
    sandbox = BwrapSandbox() if BwrapSandbox().availability().ok else ProcessSandbox()
    with pytest.raises(SandboxError, match="grant_write"):
        sandbox.run(["true"], limits=Limits(), writable=tmp_path)


def test_make_workdir_owned_by_sandbox_user() -> None:
    sandbox = ProcessSandbox()
    folder = make_workdir(sandbox)
    try:
        assert folder.stat().st_uid == (NOBODY_UID if os.geteuid() == 0 else os.getuid())
    finally:
        shutil.rmtree(folder)


def test_doctor_runs_each_backend() -> None:
    app = typer.Typer()
    app.command()(doctor)
    app.callback()(lambda: None)
    result = CliRunner().invoke(app, ["doctor", "--json"])
    checks = {check["backend"]: check for check in json.loads(result.output)}
    assert set(checks) == {"bwrap", "process", "docker"}
    for name, check in checks.items():
        if check["available"]:
            assert check["works"], f"{name} claims to work but failed: {check['problem']}"
        else:
            assert check["fix"], f"{name} is unavailable without a fix"
    local_works = any(checks[name]["works"] for name in AUTO_ORDER)
    assert result.exit_code == (0 if local_works else 1)


def test_grant_write_skips_symlinks(open_folder: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root changes owners")
    target = open_folder / "root-owned.txt"
    target.write_text("stays root's")
    folder = open_folder / "work"
    (folder / "nested").mkdir(parents=True)
    (folder / "nested" / "data.bin").write_bytes(b"x")
    (folder / "link").symlink_to(target)
    grant_write(ProcessSandbox(), folder)
    assert folder.stat().st_uid == NOBODY_UID
    assert (folder / "nested").stat().st_uid == NOBODY_UID
    assert (folder / "nested" / "data.bin").stat().st_uid == NOBODY_UID
    assert target.stat().st_uid == 0
