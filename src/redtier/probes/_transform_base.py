"""The transform interface: rewrite a prompt, and decode a reply written the same way."""

from __future__ import annotations

import random
from typing import Protocol, runtime_checkable


@runtime_checkable
class Transform(Protocol):
    """Rewrites a prompt so that a filter trained on plain text may miss it."""

    name: str

    def apply(self, prompt: str, rng: random.Random) -> str:
        """Return ``prompt`` rewritten, with instructions to the model to read it."""
        ...

    def decode(self, text: str) -> str | None:
        """Return ``text`` decoded if a reply is written in this encoding, else ``None``."""
        ...
