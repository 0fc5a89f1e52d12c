"""Exceptions raised by redtier.

Every error a user can cause derives from :class:`RedtierError`, and its
message names the offending value and the fix. The CLI prints the message of a
``RedtierError`` without a traceback and exits with status 2.

    RedtierError
    ├── UnknownNameError        a model, probe, detector or transform name not registered
    ├── ConfigError             an invalid settings value or catalog file
    ├── ModelLoadError          a model file that is missing, corrupt or unreachable
    │   └── InsufficientMemoryError   a model too large for this machine
    ├── ImportFormatError       a prompt file that an importer cannot read
    ├── StoreError              a database that cannot be opened or written
    │   └── RunNotFoundError    a run id not in the database
    └── SandboxError            a sandbox backend that cannot start a process
        └── UnwritableFolderError   a writable folder that the sandbox user cannot write
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class RedtierError(Exception):
    """Base class for errors a user can fix."""


class UnknownNameError(RedtierError, KeyError):
    """A name that is not registered, with the closest registered names."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = "") -> None:
        known = sorted(known)
        self.kind = kind
        self.name = name
        self.suggestions = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        message = f"Unknown {kind} {name!r}."
        if self.suggestions:
            message += " Did you mean: " + ", ".join(self.suggestions) + "?"
        elif known:
            message += " Known: " + ", ".join(known[:20]) + ("…" if len(known) > 20 else ".")
        if hint:
            message += " " + hint
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class ConfigError(RedtierError):
    """An invalid setting, catalog entry or selection."""


class ModelLoadError(RedtierError):
    """A model that cannot be located or loaded."""


class InsufficientMemoryError(ModelLoadError):
    """A model whose estimated memory need exceeds what this machine has."""


class ImportFormatError(RedtierError):
    """A prompt file that an importer cannot parse."""


class StoreError(RedtierError):
    """A database that cannot be opened, read or written."""


class RunNotFoundError(StoreError):
    """A run id that the database does not contain."""


class SandboxError(RedtierError):
    """A sandbox backend that is unavailable or failed to start a process."""


class UnwritableFolderError(SandboxError):
    """A folder meant to be writable in the sandbox that the sandbox user cannot write."""

    def __init__(self, message: str, folder: Path, uid: int) -> None:
        super().__init__(message)
        self.folder = folder
        self.uid = uid
