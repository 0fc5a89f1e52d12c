"""Fixtures for the code-evaluation tests: the local sandbox backends and host things to attack.

Every hostile payload aims only at what these fixtures create: files and
unix sockets in fresh temporary folders and TCP listeners on 127.0.0.1.
The folders are made under /tmp with mode 755 rather than in pytest's
private tmp folders, so that only the sandbox, not file permissions, keeps
the sandbox user (uid 65534 when the tests run as root) out of them.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from redtier.sandbox import SANDBOXES, Sandbox
from tests.sandbox.conftest import no_leftover_cgroups  # noqa: F401 - an autouse fixture

LOCAL_BACKENDS = ("bwrap", "process")
LISTENER_TIMEOUT_S = 0.5
"""How long a test waits for a connection that the sandbox must have blocked."""


@pytest.fixture(scope="session", params=LOCAL_BACKENDS)
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """Each local backend that works here; the others skip with the reason and the fix."""
    backend = SANDBOXES.get(request.param)()
    availability = backend.availability()
    if not availability.ok:
        pytest.skip(
            f"{request.param} sandbox unavailable: {availability.problem} (fix: {availability.fix})"
        )
    return backend


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A host folder under /tmp that anyone may enter, never bound into a sandbox."""
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
    listener.settimeout(LISTENER_TIMEOUT_S)
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
    listener.settimeout(LISTENER_TIMEOUT_S)
    yield listener, path
    listener.close()
