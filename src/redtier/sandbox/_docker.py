"""The Docker backend: one throw-away container per command, with no network and a read-only root."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from redtier.errors import SandboxError
from redtier.sandbox._base import Availability, Sandbox, SandboxRun
from redtier.sandbox._limits import Limits
from redtier.sandbox._paths import NOBODY_GID, NOBODY_UID, chown_tree
from redtier.sandbox._runner import SandboxProcess, Teardown, decode_exit_status, run_to_completion

logger = logging.getLogger(__name__)

DEFAULT_IMAGE = "python:3.11-slim"
INFO_TIMEOUT_S = 15.0
KILL_TIMEOUT_S = 30.0


class DockerSandbox(Sandbox):
    """Runs each command in a new container of ``image`` that is removed when it ends.

    The container has no network, a read-only root file system, all
    capabilities dropped, ``no-new-privileges``, Docker's default seccomp
    profile, a size-capped tmpfs at ``/tmp`` and cgroup limits for memory,
    processes and CPU. Binds are mounted read-only at their host paths and
    the writable folder read-write. The image's own ``python3`` runs Python,
    so payloads cannot use this project's virtual environment.
    """

    name = "docker"

    def __init__(
        self,
        *,
        image: str = DEFAULT_IMAGE,
        docker: str | None = None,
        uid: int = NOBODY_UID,
        gid: int = NOBODY_GID,
    ) -> None:
        self.image = image
        self.docker = docker or shutil.which("docker") or "docker"
        self.uid = uid
        self.gid = gid

    def availability(self) -> Availability:
        """Ask the Docker engine for its version, since the backend works only with a running engine."""
        isolates = (
            "container namespaces",
            "no network (--network none)",
            "read-only root file system",
            "all capabilities dropped, no-new-privileges",
            "Docker's default seccomp profile",
            "cgroups (memory, pids, cpu)",
            f"runs as uid {self.uid}",
        )
        if shutil.which(self.docker) is None:
            return Availability(
                backend=self.name, ok=False, isolates=isolates,
                problem="the docker client is not installed",
                fix="install Docker Engine (https://docs.docker.com/engine/install/)",
            )  # fmt: skip
        try:
            result = subprocess.run(
                [self.docker, "info", "--format", "{{.ServerVersion}}"],
                check=False, capture_output=True, timeout=INFO_TIMEOUT_S, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            failure = result.stderr.decode("utf-8", "replace").strip() if result.returncode else ""
        except subprocess.TimeoutExpired:
            failure = f"`docker info` did not answer within {INFO_TIMEOUT_S:.0f} s"
        if failure:
            return Availability(
                backend=self.name, ok=False, isolates=isolates,
                problem=f"no Docker engine ({failure.splitlines()[-1].rstrip('.')})",
                fix="start the Docker engine (sudo systemctl start docker) or set DOCKER_HOST to a running one",
            )  # fmt: skip
        return Availability(backend=self.name, ok=True, isolates=isolates)

    def python_executable(self) -> str:
        """Return ``python3``: the image's interpreter."""
        return "python3"

    def grant_write(self, path: Path) -> None:
        """Make the container user the owner of the folder ``path`` and its contents, as root."""
        if os.geteuid() == 0:
            chown_tree(path, self.uid, self.gid)

    def popen(
        self,
        argv: Sequence[str],
        *,
        limits: Limits,
        binds: Sequence[Path] = (),
        writable: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdin: int | None = subprocess.PIPE,
        stdout: int | None = subprocess.PIPE,
        stderr: int | None = subprocess.PIPE,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a new container. ``kill_tree`` on the result removes the container."""
        if not argv:
            raise SandboxError("Cannot start an empty command in the sandbox.")
        name = f"redtier-{uuid.uuid4().hex[:12]}"
        command = self.command(
            argv, name=name, limits=limits, binds=binds, writable=writable, env=env or {}
        )
        teardown = Teardown(stop=lambda: self._remove_container(name))
        try:
            return SandboxProcess(
                command, teardown=teardown, decode=decode_exit_status,
                stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            raise SandboxError(f"Could not run {self.docker}: {error}") from error

    def run(
        self,
        argv: Sequence[str],
        *,
        limits: Limits,
        binds: Sequence[Path] = (),
        writable: Path | None = None,
        env: Mapping[str, str] | None = None,
        input_bytes: bytes | None = None,
    ) -> SandboxRun:
        """Run ``argv`` in a container to completion or to the wall timeout, then remove the container."""
        process = self.popen(argv, limits=limits, binds=binds, writable=writable, env=env)
        assert isinstance(process, SandboxProcess)
        return run_to_completion(process, limits, input_bytes)

    def command(
        self,
        argv: Sequence[str],
        *,
        name: str,
        limits: Limits,
        binds: Sequence[Path],
        writable: Path | None,
        env: Mapping[str, str],
    ) -> list[str]:
        """Return the ``docker run`` command line for ``argv``."""
        command = [
            self.docker, "run", "--rm", "-i", "--init", "--name", name,
            "--network", "none", "--read-only",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--user", f"{self.uid}:{self.gid}",
            "--memory", str(limits.memory_bytes), "--memory-swap", str(limits.memory_bytes),
            "--pids-limit", str(limits.max_processes),
            "--tmpfs", f"/tmp:rw,nosuid,nodev,size={limits.tmp_size_bytes},mode=1777",
            "--ulimit", f"cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
            "--ulimit", f"nofile={limits.open_files}:{limits.open_files}",
            "--ulimit", f"fsize={limits.file_size_bytes}:{limits.file_size_bytes}",
            "--ulimit", "core=0:0",
        ]  # fmt: skip
        if limits.cpus is not None:
            command += ["--cpus", str(limits.cpus)]
        for path in binds:
            command += ["--volume", f"{os.path.abspath(path)}:{os.path.abspath(path)}:ro"]
        if writable is not None:
            folder = os.path.abspath(writable)
            command += ["--volume", f"{folder}:{folder}:rw", "--workdir", folder]
        else:
            command += ["--workdir", "/tmp"]
        for key, value in {"HOME": "/tmp", **env}.items():
            command += ["--env", f"{key}={value}"]
        return [*command, self.image, *argv]

    def _remove_container(self, name: str) -> None:
        """Stop the container: killing the ``docker run`` client alone leaves it running."""
        try:
            subprocess.run(
                [self.docker, "rm", "--force", name],
                check=False, capture_output=True, timeout=KILL_TIMEOUT_S, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as error:
            logger.warning("Could not remove container %s: %s", name, error)
