"""Fixtures for the sandbox tests: one sandbox per available backend, and host folders to attack.

Every hostile payload aims only at things these fixtures create: files and
unix sockets in fresh temporary folders and TCP listeners on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redtier.sandbox import SANDBOXES, Sandbox, make_workdir
from redtier.sandbox._cgroups import writable_parents

BACKENDS = ("bwrap", "process", "docker")


@pytest.fixture(scope="session", params=BACKENDS)
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """Each registered backend that works here; the others skip with the reason and the fix."""
    backend = SANDBOXES.get(request.param)()
    availability = backend.availability()
    if not availability.ok:
        pytest.skip(
            f"{request.param} sandbox unavailable: {availability.problem} (fix: {availability.fix})"
        )
    return backend


@pytest.fixture
def workdir(sandbox: Sandbox) -> Iterator[Path]:
    """A writable folder the sandbox user owns, deleted afterwards."""
    folder = make_workdir(sandbox)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A host folder under /tmp that anyone may enter, never bound into a sandbox.

    Its permissions would let the sandbox user in, so only the sandbox's own
    isolation (mount namespace or Landlock) keeps payloads out.
    """
    folder = Path(tempfile.mkdtemp(prefix="redtier-test-host-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    """A TCP listener on 127.0.0.1 at a free port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(1.0)
    yield listener
    listener.close()


@pytest.fixture
def unix_listener(open_folder: Path) -> Iterator[tuple[socket.socket, Path]]:
    """A unix socket listener in an unbound folder, with permissions that let anyone connect."""
    path = open_folder / "host.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    path.chmod(0o777)
    listener.listen(8)
    listener.settimeout(1.0)
    yield listener, path
    listener.close()


@pytest.fixture(autouse=True)
def no_leftover_cgroups() -> Iterator[None]:
    """Fail a test that leaves a cgroup of this process behind."""
    yield
    prefix = f"redtier-{os.getpid()}-"
    deadline = time.monotonic() + 5
    leftovers: list[Path] = []
    while time.monotonic() < deadline:
        leftovers = [
            child for parent in writable_parents().values() for child in parent.glob(prefix + "*")
        ]
        if not leftovers:
            return
        time.sleep(0.1)
    pytest.fail(f"cgroups left behind: {leftovers}")
