"""Resource limits applied to every sandboxed process."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024**2
GiB = 1024**3


class Limits(BaseModel):
    """Caps on one sandboxed process tree. Every backend applies all of them it can."""

    model_config = ConfigDict(frozen=True)

    memory_bytes: int = Field(default=2 * GiB, gt=0)
    """Resident memory: the cgroup memory limit where cgroups are writable, and ``docker --memory``.
    Also the address-space limit (RLIMIT_AS) unless ``address_space_bytes`` is set."""
    address_space_bytes: int | None = Field(default=None, gt=0)
    """Address-space limit (RLIMIT_AS) when it must differ from ``memory_bytes``. PyTorch and
    OpenMP reserve several times the memory they touch, so a model worker needs a padded
    address space while the cgroup caps what it really uses. None: ``memory_bytes``."""
    cpu_seconds: int = Field(default=60, gt=0)
    """CPU time limit (RLIMIT_CPU); the kernel sends SIGXCPU, then SIGKILL."""
    max_processes: int = Field(default=64, gt=0)
    """Process and thread limit (RLIMIT_NPROC for the sandbox uid, cgroup pids where writable)."""
    file_size_bytes: int = Field(default=64 * MiB, gt=0)
    """Largest file the process may write (RLIMIT_FSIZE)."""
    open_files: int = Field(default=256, gt=0)
    """Open file descriptors (RLIMIT_NOFILE)."""
    wall_timeout_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    """Wall-clock time after which the whole process tree is killed."""
    tmp_size_bytes: int = Field(default=64 * MiB, gt=0)
    """Size of the writable tmpfs at /tmp inside the sandbox."""
    cpus: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """CPU cores the tree may use at once (cgroup CPU quota where writable, ``docker --cpus``); None: no cap."""
    max_output_bytes: int = Field(default=4 * MiB, gt=0)
    """Bytes of stdout and of stderr that ``run()`` keeps; the rest is read and dropped."""

    def address_space_limit(self) -> int:
        """Return the RLIMIT_AS value these limits ask for."""
        return self.address_space_bytes or self.memory_bytes
