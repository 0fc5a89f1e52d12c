"""Per-process cgroup v1 groups: a memory cap, a process cap, a CPU quota and a reliable tree kill.

Each sandboxed process gets its own child group, created under the group
that this process itself belongs to, so the limits of whatever started
redtier still apply. The child joins the groups before it executes anything
(see :meth:`CgroupSet.procs_files`), so every descendant is inside them,
and killing every pid listed in ``cgroup.procs`` kills the whole tree even
after processes left their session or process group.

NOTE: only cgroup v1 hierarchies (one mount per controller, as on this
project's CI machines) are handled; on a cgroup v2-only host
:func:`writable_parents` finds nothing and the backends run without cgroups.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from redtier.sandbox._limits import Limits

logger = logging.getLogger(__name__)

CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
KILL_ROUNDS = 100
"""Passes over ``cgroup.procs`` while killing a tree. Meanwhile pids.max caps a fork bomb."""
REMOVE_TRIES = 50

_counter = itertools.count()


def mount_points() -> dict[str, Path]:
    """Return the mount point of each cgroup v1 controller, from ``/proc/self/mounts``."""
    points: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return points
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[2] != "cgroup":
            continue
        for option in fields[3].split(","):
            if option in CONTROLLERS:
                points.setdefault(option, Path(fields[1]))
    return points


def own_groups() -> dict[str, str]:
    """Return this process's group path per v1 controller, from ``/proc/self/cgroup``."""
    groups: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return groups
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            groups[controller] = path
    return groups


def writable_parents() -> dict[str, Path]:
    """Return, per controller, this process's own group folder if new child groups can be made in it."""
    points = mount_points()
    groups = own_groups()
    parents: dict[str, Path] = {}
    for controller, mount in points.items():
        folder = mount / groups.get(controller, "/").lstrip("/")
        if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
            parents[controller] = folder
    return parents


@dataclass
class CgroupStats:
    """Counters the groups recorded about a finished tree."""

    oom_kills: int = 0
    pids_max_hits: int = 0


@dataclass
class CgroupSet:
    """One child group per controller for one sandboxed process tree."""

    folders: dict[str, Path]
    stats: CgroupStats = field(default_factory=CgroupStats)

    @classmethod
    def create(cls, limits: Limits, parents: dict[str, Path]) -> CgroupSet:
        """Make the child groups under ``parents`` and write the limits into them."""
        name = f"redtier-{os.getpid()}-{next(_counter)}"
        groups = cls(folders={})
        try:
            for controller, parent in parents.items():
                if controller == "cpu" and limits.cpus is None:
                    continue
                folder = parent / name
                folder.mkdir()
                groups.folders[controller] = folder
                _write_limits(controller, folder, limits)
        except OSError:
            groups.remove()
            raise
        logger.debug("Created cgroups %s", ", ".join(map(str, groups.folders.values())))
        return groups

    def procs_files(self) -> tuple[str, ...]:
        """Return the ``cgroup.procs`` files the child writes ``0`` (itself) into before it executes."""
        return tuple(str(folder / "cgroup.procs") for folder in self.folders.values())

    def pids(self) -> set[int]:
        """Return every pid still in the groups."""
        found: set[int] = set()
        for folder in self.folders.values():
            try:
                found.update(int(line) for line in (folder / "cgroup.procs").read_text().split())
            except OSError:
                continue
        return found

    def kill_all(self) -> None:
        """SIGKILL every process in the groups until none is left."""
        for _ in range(KILL_ROUNDS):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.005)
        logger.warning(
            "Processes %s survived %d kill rounds in %s",
            sorted(self.pids()),
            KILL_ROUNDS,
            self.folders,
        )

    def remove(self) -> None:
        """Record the final counters, kill what is left and delete the groups."""
        self._record_stats()
        self.kill_all()
        for controller, folder in list(self.folders.items()):
            if _remove_folder(folder):
                del self.folders[controller]

    def _record_stats(self) -> None:
        memory = self.folders.get("memory")
        if memory is not None:
            self.stats.oom_kills = _counter_in(memory / "memory.oom_control", "oom_kill")
        pids = self.folders.get("pids")
        if pids is not None:
            self.stats.pids_max_hits = _counter_in(pids / "pids.events", "max")


def _write_limits(controller: str, folder: Path, limits: Limits) -> None:
    if controller == "memory":
        (folder / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
        swap = folder / "memory.memsw.limit_in_bytes"
        if swap.exists():
            # Memory plus swap equal to memory alone: the tree cannot swap its way past the cap.
            swap.write_text(str(limits.memory_bytes))
    elif controller == "pids":
        (folder / "pids.max").write_text(str(limits.max_processes))
    elif controller == "cpu" and limits.cpus is not None:
        (folder / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        (folder / "cpu.cfs_quota_us").write_text(str(max(1000, int(limits.cpus * CPU_PERIOD_US))))


def _remove_folder(folder: Path) -> bool:
    """Delete an emptied group, retrying while the kernel still lists exiting tasks (EBUSY)."""
    for _ in range(REMOVE_TRIES):
        try:
            folder.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.01)
    logger.warning(
        "Could not remove cgroup %s, which still lists pids %s",
        folder,
        _read_text(folder / "cgroup.procs"),
    )
    return False


def _counter_in(path: Path, key: str) -> int:
    for line in _read_text(path).splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
