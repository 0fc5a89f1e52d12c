"""Types shared by code extraction, static analysis and (later) sandbox execution."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Behaviour(StrEnum):
    """A class of malicious behaviour that code can show."""

    NETWORK = "network"
    """Reverse shells, connections, downloads and exfiltration."""
    PROCESS = "process"
    """Running commands, spawning shells, loading native code."""
    PERSISTENCE = "persistence"
    """Surviving a reboot or logout: cron, systemd, shell rc files, Run keys, new users."""
    CREDENTIAL = "credential"
    """Reading password stores, keys and tokens, or logging keystrokes."""
    ESCAPE = "escape"
    """Leaving a container or sandbox, or gaining privileges."""
    DESTRUCTIVE = "destructive"
    """Deleting or encrypting data, wiping disks, dropping firewall rules."""
    OBFUSCATION = "obfuscation"
    """Hiding what runs (exec of decoded data) or hiding traces (history clearing)."""


class CodeBlock(BaseModel):
    """A piece of code found in a model output."""

    model_config = ConfigDict(frozen=True)

    language: str | None
    """Canonical language (``python``, ``shell``, ``powershell``, or the fence's tag), or
    ``None`` when the fence has no tag and the code looks like neither Python nor shell."""
    code: str
    start_line: int = Field(ge=1)
    """1-based line of the output on which the code's first line sits."""
    kind: Literal["fenced", "unfenced", "inline"] = "fenced"
    """The way it was found: between ``` or ~~~ fences, by the line heuristic, or in `backticks`."""


class Finding(BaseModel):
    """One malicious behaviour found in a code block."""

    model_config = ConfigDict(frozen=True)

    behaviour: Behaviour
    detail: str
    """The rule that matched and the matched call, for example ``command run (os.system)``."""
    line: int = Field(ge=1)
    """1-based line of the output (the block's ``start_line`` plus the line within it)."""
    strong: bool = True
    """False for findings that benign code also shows, such as a plain ``import subprocess``."""
