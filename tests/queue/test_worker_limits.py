"""A queue worker's tier becomes the limits of the sandboxed model worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redtier.backends import ChatRequest, GenerationConfig, ModelBackend, default_worker_limits
from redtier.catalog import DEFAULT_MODEL, Precision, load_catalog
from redtier.errors import ModelLoadError
from redtier.queue._worker import sandboxed_loader
from redtier.sandbox._cgroups import writable_parents
from redtier.settings import Settings
from redtier.tiers import JobLimits, load_tiers

GiB = 1024**3
MiB = 1024**2


def _descendants(pid: int) -> list[int]:
    """Return the pids of every process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _python_worker(backend: ModelBackend) -> int:
    """Return the pid of the model worker's Python process: the deepest process below the
    backend's child (setpriv and bwrap above it carry the same command line)."""
    root = backend._process.pid  # type: ignore[attr-defined]
    found = None
    for pid in [root, *_descendants(root)]:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"python" in command[0] and any(b"_worker" in part for part in command):
            found = pid
    assert found is not None, f"no model worker process below pid {root}"
    return found


def _address_space_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            return int(line.split()[3])
    raise AssertionError("no address-space line in /proc/PID/limits")


def _memory_cgroup_limit(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            for mount in Path("/proc/self/mounts").read_text().splitlines():
                fields = mount.split()
                if fields[2] == "cgroup" and "memory" in fields[3].split(","):
                    return int((Path(fields[1]) / path.lstrip("/") / "memory.limit_in_bytes").read_text())
    return None


@pytest.fixture
def settings(tmp_path: Path, model_cache: Path) -> Settings:
    return Settings(db_url=f"sqlite:///{tmp_path / 'results.db'}", cache_dir=model_cache)


@pytest.fixture
def cpu_small_backend(settings: Settings) -> Iterator[ModelBackend]:
    entry = load_catalog().get(DEFAULT_MODEL)
    limits = JobLimits.for_job(load_tiers().get("cpu_small"), attempts=4)
    backend = sandboxed_loader("auto")(entry, settings, Precision.FP32, limits, 1)
    try:
        yield backend
    finally:
        backend.close()


def test_tier_memory_caps_the_model_worker(cpu_small_backend: ModelBackend) -> None:
    pid = _python_worker(cpu_small_backend)
    by_model = default_worker_limits(load_catalog().get(DEFAULT_MODEL), Precision.FP32)
    padded = max(by_model.address_space_limit(), 4 * 2 * GiB + 4 * GiB)
    assert _address_space_limit(pid) == padded, "the address space is padded, not the tier's 2 GB"
    if writable_parents():
        assert _memory_cgroup_limit(pid) == 2 * GiB, "cpu_small's 2 GB caps resident memory"
    [(index, generation)] = list(
        cpu_small_backend.generate_iter(
            [ChatRequest(prompt="Name a colour.")], GenerationConfig(max_new_tokens=8)
        )
    )
    assert index == 0 and generation.error is None and generation.tokens_out > 0
    assert "sandbox" in cpu_small_backend.describe()


@pytest.mark.skipif(not writable_parents(), reason="needs a writable cgroup v1 memory controller")
def test_model_that_outgrows_its_tier_fails_with_the_reason(settings: Settings) -> None:
    entry = load_catalog().get(DEFAULT_MODEL)
    tiny = JobLimits(tier="tiny", memory_bytes=150 * MiB, wall_timeout_s=600, attempt_timeout_s=60)
    with pytest.raises(ModelLoadError) as caught:
        sandboxed_loader("auto")(entry, settings, Precision.FP32, tiny, 1)
    message = str(caught.value)
    assert DEFAULT_MODEL in message
    assert "memory" in message.lower() or "killed" in message.lower(), message
