"""Judge many outputs at once, embedding them in batches before the per-item verdicts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from redtier.detectors._base import Detector
from redtier.detectors._registry import get_detector
from redtier.detectors._verdict import DEFAULT_THRESHOLD, Judgement, judge, unjudgeable_reason
from redtier.probes import Attempt

CHUNK = 512
"""Items prepared at a time: three embeddings each stay well inside the embedder's cache."""
BATCHED_NAMES = ("refusal", "harmful_compliance")
"""Registered detectors that most attempts run and that batch their work."""


@runtime_checkable
class BatchPreparable(Protocol):
    """A detector that can do the costly part of its work for many outputs in one pass."""

    def prepare(self, items: Sequence[tuple[Attempt, str]]) -> None:
        """Precompute what ``detect`` needs for every (attempt, output) in ``items``."""
        ...


def judge_many(
    pairs: Iterable[tuple[Attempt, str]],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    detectors: Mapping[str, Detector] | None = None,
    context: Sequence[str] = (),
) -> list[Judgement]:
    """Judge every (attempt, output) pair, returning what :func:`judge` returns for each.

    Detectors that support it (the trained ``refusal`` and ``harmful_compliance``)
    first embed every output and goal of the batch in one pass, so the per-item
    calls find their embeddings cached. Raises what :func:`judge` raises.
    """
    items = list(pairs)
    preparable = _preparable(detectors or {})
    judgements: list[Judgement] = []
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        judgeable = [
            (attempt, output) for attempt, output in chunk if not unjudgeable_reason(output)
        ]
        for detector in preparable if judgeable else []:
            detector.prepare(judgeable)
        judgements.extend(
            judge(attempt, output, threshold=threshold, detectors=detectors, context=context)
            for attempt, output in chunk
        )
    return judgements


def _preparable(overrides: Mapping[str, Detector]) -> list[BatchPreparable]:
    """Return the distinct detectors among the usual ones and the overrides that can batch."""
    names = dict.fromkeys([*BATCHED_NAMES, *overrides])
    found: list[BatchPreparable] = []
    for name in names:
        detector = overrides.get(name) or get_detector(name)
        if isinstance(detector, BatchPreparable) and all(detector is not seen for seen in found):
            found.append(detector)
    return found
