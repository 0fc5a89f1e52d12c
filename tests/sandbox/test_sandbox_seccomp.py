"""The seccomp filter refuses the listed system calls, alone and inside each local backend."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
from collections.abc import Callable

import pytest

from redtier.sandbox import Limits, Sandbox, _seccomp

from ._support import run_python

SYS_CLONE3 = 435
SYS_IO_URING_SETUP = 425
CLONE_NEWUSER = 0x10000000
PTRACE_TRACEME = 0


def errno_of(call: Callable[[], int]) -> int:
    """Run a libc call; return 0 on success or the errno it failed with."""
    ctypes.set_errno(0)
    result = call()
    return ctypes.get_errno() if result == -1 else 0


def in_filtered_child(extra_denied: tuple[str, ...] = ()) -> dict[str, int]:
    """Fork, load the filter in the child, try each call there and return the errno each got."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            _seccomp.install(extra_denied)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            results = {
                "socket_inet": errno_of(lambda: libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)),
                "socket_unix": errno_of(lambda: libc.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)),
                "unshare": errno_of(lambda: libc.unshare(CLONE_NEWUSER)),
                "ptrace": errno_of(lambda: libc.ptrace(PTRACE_TRACEME, 0, None, None)),
                "mount": errno_of(lambda: libc.mount(b"none", b"/mnt", b"tmpfs", 0, None)),
                "keyctl": errno_of(lambda: libc.syscall(250, 0, 0, 0, 0, 0)),
                "clone3": errno_of(lambda: libc.syscall(SYS_CLONE3, None, 0)),
                "io_uring_setup": errno_of(lambda: libc.syscall(SYS_IO_URING_SETUP, 1, None)),
                "setsid": errno_of(lambda: libc.setsid()),
            }
            os.write(write_end, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        output = reader.read()
    os.waitpid(pid, 0)
    return json.loads(output)


def test_filter_refuses_listed_calls() -> None:
    if _seccomp.locate_libraries()["seccomp"] == "":
        pytest.skip("libseccomp is not installed (apt-get install -y libseccomp2)")
    results = in_filtered_child()
    assert results["socket_inet"] == errno.EPERM
    assert results["socket_unix"] == 0
    assert results["unshare"] == errno.EPERM
    assert results["ptrace"] == errno.EPERM
    assert results["mount"] == errno.EPERM
    assert results["keyctl"] == errno.EPERM
    assert results["clone3"] == errno.ENOSYS
    assert results["io_uring_setup"] == errno.EPERM


def test_extra_denied_calls_refused() -> None:
    if _seccomp.locate_libraries()["seccomp"] == "":
        pytest.skip("libseccomp is not installed (apt-get install -y libseccomp2)")
    results = in_filtered_child(("socket", "setsid"))
    assert results["socket_unix"] == errno.EPERM
    assert results["setsid"] == errno.EPERM


def test_filter_active_inside_sandbox(sandbox: Sandbox) -> None:
    if sandbox.name == "docker":
        pytest.skip("docker uses its own default seccomp profile")
    code = """
        import ctypes, errno, os, socket, threading
        libc = ctypes.CDLL(None, use_errno=True)
        def report(name, result):
            print(name, ctypes.get_errno() if result == -1 else 0)
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            print("socket_inet 0")
        except OSError as error:
            print("socket_inet", error.errno)
        report("unshare", libc.unshare(0x10000000))
        report("ptrace", libc.ptrace(0, 0, None, None))
        thread = threading.Thread(target=print, args=("thread ok",))
        thread.start()
        thread.join()
    """
    result = run_python(sandbox, code, Limits(wall_timeout_s=30))
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["socket_inet"] == str(errno.EPERM), result.stdout + result.stderr
    assert lines["unshare"] == str(errno.EPERM)
    assert lines["ptrace"] == str(errno.EPERM)
    assert lines["thread"] == "ok", "clone for threads must still work"
