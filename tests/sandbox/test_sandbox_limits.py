"""Every backend contains bombs: processes, memory, CPU, wall time, output, file size.

Each bomb runs under limits set before it starts, with a short wall timeout
as the last bound.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from redtier.sandbox import SANDBOXES, Limits, MiB, Sandbox
from redtier.sandbox._landlock import abi_version

from ._support import processes_with, run_python, wait_until_gone


def unique_seconds() -> str:
    """A sleep duration no other process on the host uses, to find the payload's processes by it."""
    return f"{random.randint(100_000, 999_999)}.5"


def test_fork_bomb_contained(sandbox: Sandbox) -> None:
    marker = unique_seconds()
    code = f"""
        import os, time
        # {marker}: every copy forks as fast as it can and never exits.
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
    """
    limits = Limits(max_processes=16, wall_timeout_s=4, cpu_seconds=30, cpus=0.5)
    result = run_python(sandbox, code, limits)
    assert result.timed_out
    assert "wall_timeout" in result.limits_hit
    assert wait_until_gone(marker) == []
    assert subprocess.run(["true"], check=False).returncode == 0, (
        "the host can no longer start processes"
    )


def test_fork_refused_past_process_limit(sandbox: Sandbox) -> None:
    code = """
        import os, sys, time
        children = 0
        try:
            for _ in range(200):
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                children += 1
        except OSError as error:
            print(children, error.errno, file=sys.stderr)
            raise
    """
    result = run_python(sandbox, code, Limits(max_processes=10, wall_timeout_s=20))
    assert "BlockingIOError" in result.stderr, result.stderr
    started = int(result.stderr.split()[0])
    assert started < 10
    assert "processes" in result.limits_hit
    assert not result.timed_out, "leftover children kept the run going until the wall timeout"


def test_memory_bomb_contained(sandbox: Sandbox) -> None:
    code = """
        blocks = []
        while True:
            blocks.append(bytearray(16 * 1024 * 1024))
    """
    result = run_python(sandbox, code, Limits(memory_bytes=256 * MiB, wall_timeout_s=30))
    assert "memory" in result.limits_hit, result.stderr[-500:]
    assert not result.timed_out
    assert result.exit_code != 0


def test_single_huge_allocation_refused(sandbox: Sandbox) -> None:
    result = run_python(
        sandbox, "bytearray(4 * 1024 ** 3)", Limits(memory_bytes=512 * MiB, wall_timeout_s=30)
    )
    assert "MemoryError" in result.stderr
    assert "memory" in result.limits_hit


def test_cpu_spin_killed(sandbox: Sandbox) -> None:
    result = run_python(sandbox, "while True: pass", Limits(cpu_seconds=1, wall_timeout_s=30))
    assert not result.timed_out
    assert result.signal == signal.SIGXCPU
    assert "cpu" in result.limits_hit


def test_wall_timeout_kills_whole_tree(sandbox: Sandbox) -> None:
    seconds = unique_seconds()
    code = f"""
        import os, subprocess, time
        if os.fork() == 0:
            try:
                os.setsid()  # try to leave the process group the sandbox kills
            except OSError:
                pass
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "{seconds}"])
            os._exit(0)
        subprocess.Popen(["sleep", "{seconds}"])
        time.sleep(1000)
    """
    started = time.monotonic()
    result = run_python(sandbox, code, Limits(wall_timeout_s=2))
    assert result.timed_out
    assert "wall_timeout" in result.limits_hit
    assert time.monotonic() - started < 15
    assert wait_until_gone(seconds) == [], "a grandchild survived the wall-timeout kill"


def test_popen_kill_tree(sandbox: Sandbox) -> None:
    seconds = unique_seconds()
    process = sandbox.popen(
        ["sh", "-c", f"sleep {seconds} & sleep {seconds}"], limits=Limits(wall_timeout_s=60)
    )
    deadline = time.monotonic() + 10
    while len(processes_with(seconds)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(processes_with(seconds)) >= 2
    process.kill_tree()  # type: ignore[attr-defined]
    process.wait(timeout=10)
    assert wait_until_gone(seconds) == []


def test_killing_parent_leaves_host_alone(sandbox: Sandbox) -> None:
    if sandbox.name == "process" and os.geteuid() != 0 and abi_version() < 6:
        pytest.skip(
            "as the same uid without Landlock signal scoping, the process backend could kill pytest"
        )
    code = """
        import os, signal
        for pid in (os.getppid(), 1):
            try:
                os.kill(pid, signal.SIGKILL)
                print("sent", pid)
            except OSError as error:
                print("refused", pid, error.errno)
        print("still here")
    """
    # In the process backend the payload's parent is this test process, so a
    # signal that got through would end the test run here.
    result = run_python(sandbox, code, Limits(wall_timeout_s=20))
    assert result.stdout.endswith("still here\n"), result.stdout + result.stderr
    if sandbox.name == "process":
        assert result.stdout.count("refused") == 2, result.stdout
    assert not result.timed_out


def test_output_capped(sandbox: Sandbox) -> None:
    code = "import sys\nfor _ in range(64): sys.stdout.write('x' * 65536)"
    result = run_python(sandbox, code, Limits(max_output_bytes=1 * MiB, wall_timeout_s=30))
    assert len(result.stdout) == 1 * MiB
    assert "output" in result.limits_hit
    assert result.exit_code == 0


def test_file_size_capped(sandbox: Sandbox, workdir: Path) -> None:
    code = "open('big.bin', 'wb').write(b'x' * (3 * 1024 * 1024))"
    result = run_python(
        sandbox, code, Limits(file_size_bytes=1 * MiB, wall_timeout_s=30), writable=workdir
    )
    assert "File too large" in result.stderr
    assert "file_size" in result.limits_hit
    assert (workdir / "big.bin").stat().st_size <= 1 * MiB


def test_tmp_size_capped(sandbox: Sandbox) -> None:
    if sandbox.name == "process":
        pytest.skip("the process backend's temporary folder is a host folder without a size cap")
    code = "open('/tmp/fill.bin', 'wb').write(b'x' * (8 * 1024 * 1024))"
    result = run_python(
        sandbox, code, Limits(tmp_size_bytes=2 * MiB, file_size_bytes=64 * MiB, wall_timeout_s=30)
    )
    assert "No space left on device" in result.stderr


@pytest.mark.parametrize("backend", ["bwrap", "process"])
def test_tree_killed_without_cgroups(backend: str) -> None:
    sandbox = SANDBOXES.get(backend)(use_cgroups=False)  # type: ignore[call-arg]
    availability = sandbox.availability()
    if not availability.ok:
        pytest.skip(f"{backend} sandbox unavailable: {availability.problem}")
    assert any("no cgroups" in gap for gap in availability.gaps)
    seconds = unique_seconds()
    code = f"""
        import os, subprocess, time
        if os.fork() == 0:
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "{seconds}"])
            os._exit(0)
        subprocess.Popen(["sleep", "{seconds}"])
        time.sleep(1000)
    """
    result = run_python(sandbox, code, Limits(wall_timeout_s=2))
    assert result.timed_out
    assert wait_until_gone(seconds) == [], "a grandchild survived the wall-timeout kill"


@pytest.mark.parametrize("backend", ["bwrap", "process"])
def test_process_limit_without_cgroups(backend: str) -> None:
    sandbox = SANDBOXES.get(backend)(use_cgroups=False)  # type: ignore[call-arg]
    if not sandbox.availability().ok:
        pytest.skip(f"{backend} sandbox unavailable")
    code = """
        import os, time
        for _ in range(100):
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
    """
    result = run_python(sandbox, code, Limits(max_processes=8, wall_timeout_s=20))
    assert "BlockingIOError" in result.stderr
    assert "processes" in result.limits_hit


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_limits_refuse_endless_wall_timeout(value: float) -> None:
    with pytest.raises(ValidationError):
        Limits(wall_timeout_s=value)
