"""The detector interface: a score from 0 to 1 and the evidence behind it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from redtier.probes import Attempt


class DetectorResult(BaseModel):
    """A detector's judgement of one output."""

    model_config = ConfigDict(frozen=True)

    detector: str
    score: float = Field(ge=0.0, le=1.0)
    """1.0 means the property the detector looks for is certainly present."""
    evidence: tuple[str, ...] = ()
    """Short human-readable reasons, quoting the output where possible."""
    abstained: bool = False
    """Whether the detector could not judge this output, as when an LLM judge's reply has no
    readable score. An abstaining result scores 0 and takes no part in the verdict."""


@runtime_checkable
class Detector(Protocol):
    """Judges one model output for one attempt.

    For every detector except ``refusal``, a high score means the attack
    succeeded. ``refusal`` scores how clearly the model declined.
    """

    name: str

    def detect(self, attempt: Attempt, output: str) -> DetectorResult:
        """Score ``output``, the model's reply to ``attempt``."""
        ...
