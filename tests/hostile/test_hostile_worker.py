"""Hostile model workers: remote code that attacks the host while the model generates.

Each payload runs inside the sandboxed model worker during one attempt of a
small scan. The scan must finish, record that attempt as an error (or as a
normal generation when the payload was simply refused), keep every other
attempt, and the host must see none of the payload's effects.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from redtier.backends import SandboxedBackend, WorkerOptions
from redtier.probes import import_prompts
from redtier.sandbox import GiB, Limits, get_sandbox
from redtier.scan import ScanOptions, build_plan, execute_scan
from redtier.settings import Settings
from redtier.store import Store
from tests.hostile._hostile_model import TRIGGER_WORD, build_hostile_model

PROMPTS = ["hello world", f"{TRIGGER_WORD} now", "hello again world", "answer the world please"]


class Listener:
    """A TCP or unix listener that counts the connections it accepts."""

    def __init__(self, family: int, address: object) -> None:
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.bind(address)
        self.socket.listen(8)
        self.socket.settimeout(0.2)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder the sandbox uid can read, unlike pytest's private tmp folders."""
    path = Path(tempfile.mkdtemp(prefix="redtier-hostile-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tcp_listener() -> Iterator[Listener]:
    listener = Listener(socket.AF_INET, ("127.0.0.1", 0))
    yield listener
    listener.close()


@pytest.fixture
def host_secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("HOST-SECRET-7731")
    secret.chmod(0o600)
    return secret


def run_hostile_scan(
    folder: Path, payload: str, db_path: Path, sandbox: str = "bwrap"
) -> tuple[Store, str, SandboxedBackend]:
    entry = build_hostile_model(folder / "model", payload)
    prompts = folder / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    cache = folder / "cache"
    cache.mkdir()
    settings = Settings(db_url=f"sqlite:///{db_path}", cache_dir=cache)
    options = ScanOptions(
        model="hostile", probes="none", prompt_files=(str(prompts),), transforms=(),
        max_new_tokens=4, batch_size=1,
    )
    plan = build_plan([import_prompts(prompts)], options)
    worker = WorkerOptions(
        load_timeout_s=120,
        batch_timeout_s=20,
        max_restarts=2,
        limits=Limits(memory_bytes=3 * GiB, max_processes=128, cpu_seconds=600, wall_timeout_s=600),
    )
    backend = SandboxedBackend.start(entry, settings, get_sandbox(sandbox), worker)
    store = Store(settings.db_url)
    run = store.create_run("hostile", options.model_dump(mode="json"), {}, len(plan))
    try:
        execute_scan(store, run.id, plan, backend, options)
    finally:
        backend.close()
    return store, run.id, backend


def assert_only_trigger_failed(store: Store, run_id: str, expect_error: bool = True) -> list[str]:
    rows = list(store.iter_attempts(run_id))
    assert len(rows) == len(PROMPTS)
    assert len({row.key for row in rows}) == len(PROMPTS)
    assert store.get_run(run_id).status == "completed"
    errors = []
    for row in rows:
        if TRIGGER_WORD in row.prompt:
            if expect_error:
                assert row.verdict == "error", row.explanation
                assert "model worker failed" in (row.error or "")
            errors.append(row.error or "")
        else:
            assert row.error is None, row.error
    return errors


PAYLOADS_THAT_KILL_THE_WORKER = {
    "crash": "os.kill(os.getpid(), 9)",
    "sleep_forever": "time.sleep(10**6)",
    "cpu_spin": "while True:\n    pass",
    "memory_bomb": "hoard = []\nwhile True:\n    hoard.append(bytearray(256 * 1024 * 1024))",
    "fork_bomb": "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    "kill_parent": "os.kill(os.getppid(), 9)\nos.kill(1, 9)\ntime.sleep(10**6)",
}


@pytest.mark.parametrize("name", sorted(PAYLOADS_THAT_KILL_THE_WORKER))
def test_worker_failure_is_recorded_and_scan_continues(name: str, open_folder: Path, db_path: Path) -> None:
    store, run_id, backend = run_hostile_scan(open_folder, PAYLOADS_THAT_KILL_THE_WORKER[name], db_path)
    errors = assert_only_trigger_failed(store, run_id)
    assert backend.restarts >= 1
    assert errors[0]
    assert os.getpid() > 0  # this process survived the payload


def test_loopback_connection_is_blocked(open_folder: Path, db_path: Path, tcp_listener: Listener) -> None:
    port = tcp_listener.socket.getsockname()[1]
    payload = f"socket.create_connection(('127.0.0.1', {port}), timeout=3)"
    store, run_id, _ = run_hostile_scan(open_folder, payload, db_path)
    assert_only_trigger_failed(store, run_id)
    assert tcp_listener.accepted == 0


def test_host_unix_socket_is_unreachable(open_folder: Path, db_path: Path) -> None:
    path = open_folder / "host.sock"
    listener = Listener(socket.AF_UNIX, str(path))
    path.chmod(0o777)
    payload = (
        "for target in ['/var/run/docker.sock', %r]:\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    s.connect(target)\n"
        "raise RuntimeError('connected to a host socket')" % str(path)
    )
    try:
        store, run_id, _ = run_hostile_scan(open_folder, payload, db_path)
        errors = assert_only_trigger_failed(store, run_id)
    finally:
        listener.close()
    assert listener.accepted == 0
    assert "connected to a host socket" not in errors[0]


def test_secret_file_is_unreadable(open_folder: Path, db_path: Path, host_secret: Path) -> None:
    payload = f"raise RuntimeError('LEAKED ' + open({str(host_secret)!r}).read())"
    store, run_id, _ = run_hostile_scan(open_folder, payload, db_path)
    errors = assert_only_trigger_failed(store, run_id)
    assert "HOST-SECRET-7731" not in errors[0]
    assert "LEAKED HOST" not in errors[0]
    assert "FileNotFoundError" in errors[0] or "PermissionError" in errors[0]


def test_write_outside_working_folder_fails(open_folder: Path, db_path: Path, tmp_path: Path) -> None:
    targets = [tmp_path / "planted.txt", open_folder / "planted.txt", Path("/usr/planted.txt")]
    lines = [f"    open({str(t)!r}, 'w').write('x')" for t in targets]
    payload = "for _ in [0]:\n" + "\n".join(lines)
    store, run_id, _ = run_hostile_scan(open_folder, payload, db_path)
    assert_only_trigger_failed(store, run_id)
    for target in targets:
        assert not target.exists(), target


def test_proc_walk_does_not_reach_host_root(open_folder: Path, db_path: Path, tmp_path: Path) -> None:
    marker = tmp_path / "host-marker.txt"
    marker.write_text("visible")
    payload = f"raise RuntimeError('SAW ' + open('/proc/1/root' + {str(marker)!r}).read())"
    store, run_id, _ = run_hostile_scan(open_folder, payload, db_path)
    errors = assert_only_trigger_failed(store, run_id)
    assert "SAW visible" not in errors[0]


@pytest.mark.parametrize("name", ["crash", "sleep_forever"])
def test_process_sandbox_contains_worker_failures(name: str, open_folder: Path, db_path: Path) -> None:
    store, run_id, _ = run_hostile_scan(open_folder, PAYLOADS_THAT_KILL_THE_WORKER[name], db_path, "process")
    assert_only_trigger_failed(store, run_id)


def test_process_sandbox_blocks_loopback(open_folder: Path, db_path: Path, tcp_listener: Listener) -> None:
    port = tcp_listener.socket.getsockname()[1]
    payload = f"socket.create_connection(('127.0.0.1', {port}), timeout=3)"
    store, run_id, _ = run_hostile_scan(open_folder, payload, db_path, "process")
    assert_only_trigger_failed(store, run_id)
    assert tcp_listener.accepted == 0
