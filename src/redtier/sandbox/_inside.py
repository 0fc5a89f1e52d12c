"""The sandbox bootstrap: apply limits, Landlock and seccomp to itself, then execute the payload.

The bwrap and process backends start it, already as the sandbox user, as::

    python -I -S .../redtier/sandbox/_inside.py --config JSON -- ARGV...

``-I -S`` keep the environment and site-packages out of the bootstrap, and it
is run by path rather than with ``-m redtier.sandbox._inside`` because
importing the ``redtier`` package would import the model stack. So it uses
only the standard library, its sibling modules ``_landlock`` and
``_seccomp`` (imported as top-level modules from this folder) and
``pyseccomp`` (from the folder named in the configuration).

The configuration (built by ``redtier.sandbox._local.bootstrap_config``)::

    {"status_fd": 5,                 # pipe to the parent, see below
     "rlimits": {"RLIMIT_CPU": [60, 61], ...},   # [soft, hard]; RLIMIT_AS is set last
     "landlock": {"read": [...], "write": [...]} or null,
     "seccomp": {"path": "/site-packages", "libraries": {...}, "extra_denied": [...]}}

Steps, in order:

1. Close every inherited descriptor except 0-2 and the status pipe.
2. Set the resource limits except the address space.
3. Apply Landlock when configured, and load the seccomp filter.
4. Set the address-space limit, last, so the bootstrap's own imports do not
   count against it.
5. Write ``R`` to the status pipe and ``execv`` the payload, which closes the pipe.

A failing step writes ``E`` and the reason to the pipe and to stderr and
exits with :data:`SETUP_FAILED`, so the sandbox never runs a payload with
fewer restrictions than configured.

Another layer, such as Python audit hooks for evaluating model-written
code, belongs in the payload's own start-up, after this bootstrap.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Any, NoReturn

SETUP_FAILED = 125
"""Exit status when the sandbox could not be set up (the payload never ran)."""
EXEC_FAILED = 127


def main(argv: list[str]) -> NoReturn:
    """Parse ``--config JSON -- ARGV...``, restrict this process, and execute ARGV."""
    if len(argv) < 4 or argv[0] != "--config" or argv[2] != "--":
        sys.stderr.write("usage: _inside.py --config JSON -- ARGV...\n")
        os._exit(SETUP_FAILED)
    config: dict[str, Any] = json.loads(argv[1])
    payload = argv[3:]
    status_fd = int(config["status_fd"])
    os.set_inheritable(status_fd, False)
    try:
        executable = _prepare(config, payload)
    except Exception as error:  # noqa: BLE001 - every failure must stop the payload and be reported
        _fail(status_fd, f"{type(error).__name__}: {error}")
    os.write(status_fd, b"R")
    try:
        os.execv(executable, payload)
    except OSError as error:
        sys.stderr.write(f"redtier sandbox: cannot execute {payload[0]}: {error}\n")
        os._exit(EXEC_FAILED)


def _prepare(config: dict[str, Any], payload: list[str]) -> str:
    """Apply the limits, Landlock and seccomp, and return the payload's executable path."""
    _close_inherited(keep=int(config["status_fd"]))
    limits = dict(config["rlimits"])
    address_space = limits.pop("RLIMIT_AS", None)
    for name, (soft, hard) in limits.items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if config.get("landlock"):
        import _landlock

        _landlock.restrict(config["landlock"]["read"], config["landlock"]["write"])
    seccomp = config["seccomp"]
    sys.path.append(seccomp["path"])
    import _seccomp

    _seccomp.install(seccomp.get("extra_denied", ()), seccomp.get("libraries"))
    executable = _which(payload[0])
    if executable is None:
        raise FileNotFoundError(f"{payload[0]} is not an executable file inside the sandbox")
    if address_space is not None:
        resource.setrlimit(resource.RLIMIT_AS, tuple(address_space))
    return executable


def _which(name: str) -> str | None:
    """Find ``name`` as ``execvp`` would, on the payload's PATH (``shutil`` costs ms to import)."""
    folders = [""] if "/" in name else os.environ.get("PATH", os.defpath).split(os.pathsep)
    for folder in folders:
        candidate = os.path.join(folder, name) if folder else name
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _close_inherited(keep: int) -> None:
    """Close descriptors the payload must not see (the sandbox's own fds, caller's leaks)."""
    highest = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    highest = highest if 0 < highest < 1 << 20 else 1 << 16
    os.closerange(3, keep)
    os.closerange(keep + 1, highest)


def _fail(status_fd: int, reason: str) -> NoReturn:
    sys.stderr.write(f"redtier sandbox setup failed: {reason}\n")
    try:
        os.write(status_fd, b"E" + reason.encode("utf-8", "replace"))
    except OSError:
        pass
    os._exit(SETUP_FAILED)


if __name__ == "__main__":
    main(sys.argv[1:])
