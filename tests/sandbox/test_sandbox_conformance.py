"""What every sandbox backend must do: run commands, keep them off the network and the host's files."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from redtier.errors import SandboxError
from redtier.sandbox import Limits, Sandbox, SandboxRun, python_binds

from . import _support as support

QUICK = Limits(wall_timeout_s=30, cpu_seconds=20)


def run_python(sandbox: Sandbox, code: str, limits: Limits = QUICK, **kwargs: Any) -> SandboxRun:
    return support.run_python(sandbox, code, limits, **kwargs)


def test_runs_python(sandbox: Sandbox) -> None:
    result = run_python(sandbox, "import os, sys; print('ok', sys.version_info[0], os.getuid())")
    assert result.exit_code == 0, result.stderr
    words = result.stdout.split()
    assert words[:2] == ["ok", "3"]
    if os.geteuid() == 0:
        assert words[2] != "0", "the payload runs as root"
    assert result.signal is None
    assert not result.timed_out
    assert result.limits_hit == ()


def test_runs_shell_with_exit_status(sandbox: Sandbox) -> None:
    result = sandbox.run(["sh", "-c", "echo $((2 + 3)); echo oops >&2; exit 7"], limits=QUICK)
    assert result.exit_code == 7
    assert result.stdout == "5\n"
    assert result.stderr == "oops\n"


def test_stdin_reaches_payload(sandbox: Sandbox) -> None:
    result = run_python(
        sandbox, "import sys; print(sys.stdin.read().upper())", input_bytes=b"hello"
    )
    assert result.stdout.strip() == "HELLO"


def test_host_environment_not_leaked(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDTIER_TEST_TOKEN", "host-secret-value")
    result = run_python(
        sandbox,
        "import os; print(os.environ.get('REDTIER_TEST_TOKEN')); print(os.environ['GIVEN'])",
        env={"GIVEN": "yes"},
    )
    assert result.stdout.split() == ["None", "yes"]


def test_tcp_listener_on_loopback_unreachable(
    sandbox: Sandbox, tcp_listener: socket.socket
) -> None:
    port = tcp_listener.getsockname()[1]
    code = f"""
        import socket
        try:
            connection = socket.create_connection(("127.0.0.1", {port}), timeout=3)
            print("connected")
        except OSError as error:
            print("blocked", error.errno)
    """
    result = run_python(sandbox, code)
    assert result.stdout.startswith("blocked"), result.stdout + result.stderr
    with pytest.raises(TimeoutError):
        tcp_listener.accept()


def test_inet_socket_refused(sandbox: Sandbox) -> None:
    code = """
        import socket
        for family in (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK, socket.AF_PACKET):
            try:
                socket.socket(family, socket.SOCK_RAW if family == socket.AF_PACKET else socket.SOCK_DGRAM)
                print("created", family)
            except OSError as error:
                print("refused", family, error.errno)
    """
    result = run_python(sandbox, code)
    lines = result.stdout.splitlines()
    assert len(lines) == 4, result.stderr
    assert all(line.startswith("refused") for line in lines), result.stdout


def test_host_unix_socket_unreachable(
    sandbox: Sandbox, unix_listener: tuple[socket.socket, Path]
) -> None:
    listener, path = unix_listener
    code = f"""
        import socket
        for target in ({str(path)!r}, "/var/run/docker.sock", "/run/docker.sock"):
            try:
                client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                client.settimeout(3)
                client.connect(target)
                print("connected", target)
            except OSError as error:
                print("blocked", target, error.errno)
    """
    result = run_python(sandbox, code)
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stderr
    assert all(line.startswith("blocked") for line in lines), result.stdout
    with pytest.raises(TimeoutError):
        listener.accept()


def test_secret_outside_binds_unreadable(
    sandbox: Sandbox, tmp_path: Path, open_folder: Path
) -> None:
    private = tmp_path / "private-secret.txt"
    private.write_text("PRIVATE-SECRET")
    private.chmod(0o600)
    public = open_folder / "public-secret.txt"
    public.write_text("PUBLIC-SECRET")
    public.chmod(0o644)
    code = f"""
        for path in ({str(private)!r}, {str(public)!r}):
            try:
                print(open(path).read())
            except OSError as error:
                print("denied", error.errno)
    """
    result = run_python(sandbox, code)
    assert "SECRET" not in result.stdout
    assert result.stdout.count("denied") == 2, result.stdout + result.stderr


def test_bound_folder_is_read_only(sandbox: Sandbox, open_folder: Path) -> None:
    open_folder.chmod(0o777)
    (open_folder / "data.txt").write_text("bound data")
    code = f"""
        import os
        print(open({str(open_folder / "data.txt")!r}).read())
        for target in ({str(open_folder / "planted.txt")!r}, "/planted.txt", "/usr/planted.txt"):
            try:
                with open(target, "w") as handle:
                    handle.write("x")
                print("wrote", target)
            except OSError as error:
                print("denied", error.errno)
    """
    result = run_python(sandbox, code, binds=[open_folder])
    lines = result.stdout.splitlines()
    assert lines[0] == "bound data", result.stderr
    assert lines[1:] and all(line.startswith("denied") for line in lines[1:]), result.stdout
    assert not (open_folder / "planted.txt").exists()
    assert not Path("/planted.txt").exists()
    assert not Path("/usr/planted.txt").exists()


def test_writes_inside_workdir(sandbox: Sandbox, workdir: Path) -> None:
    code = """
        import os, tempfile
        with open("out.txt", "w") as handle:
            handle.write("written inside")
        os.makedirs("nested/deeper")
        with tempfile.NamedTemporaryFile(delete=True) as scratch:
            scratch.write(b"temporary")
        print(os.getcwd())
    """
    result = run_python(sandbox, code, writable=workdir)
    assert result.exit_code == 0, result.stderr
    assert Path(result.stdout.strip()) == workdir.resolve()
    assert (workdir / "out.txt").read_text() == "written inside"
    assert (workdir / "nested" / "deeper").is_dir()


def test_proc_1_root_hides_host(sandbox: Sandbox, open_folder: Path) -> None:
    marker = open_folder / "host-marker.txt"
    marker.write_text("host marker")
    marker.chmod(0o644)
    code = f"""
        import os
        print(os.path.exists("/proc/1/root" + {str(marker)!r}))
        try:
            print(sorted(os.listdir("/proc/1/root" + {str(open_folder)!r})))
        except OSError as error:
            print("denied", error.errno)
    """
    result = run_python(sandbox, code)
    lines = result.stdout.splitlines()
    assert lines[0] == "False", result.stdout + result.stderr
    assert "host-marker.txt" not in result.stdout


def test_missing_bind_rejected(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="does not exist"):
        sandbox.run(["true"], limits=QUICK, binds=[tmp_path / "absent"])


def test_unknown_executable_raises(sandbox: Sandbox) -> None:
    if sandbox.name == "docker":
        pytest.skip("docker reports a missing executable as exit status 127, not SandboxError")
    with pytest.raises(SandboxError, match="not an executable"):
        sandbox.run(["/no/such/program"], limits=QUICK)


def test_payload_sees_the_cpus_instruction_sets(sandbox: Sandbox) -> None:
    """PyTorch picks its kernels from /proc/cpuinfo; a sandbox that hides it makes models slower."""
    torch = pytest.importorskip("torch")
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    limits = Limits(wall_timeout_s=60, cpu_seconds=60, memory_bytes=8 * 1024**3)
    result = run_python(sandbox, code, limits, binds=python_binds())
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == torch.backends.cpu.get_cpu_capability()
    assert "cpuinfo" not in result.stderr, result.stderr
