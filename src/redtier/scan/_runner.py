"""Run a planned scan: generate in batches, judge each output, store each attempt."""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redtier import __version__
from redtier.backends import ChatRequest, Generation, GenerationConfig, ModelBackend, sha256_of
from redtier.detectors import DETECTORS, Detector, Judgement, judge_many, not_judged
from redtier.errors import ConfigError
from redtier.probes import Attempt, Probe, import_prompts, load_library
from redtier.scan._options import ScanOptions
from redtier.scan._heap import release_free_heap
from redtier.scan._pipeline import BackgroundGenerations
from redtier.store import AttemptRow, Store, utcnow

logger = logging.getLogger(__name__)

GENERATE_AHEAD_BATCHES = 2
"""How many batches of generations may wait for judging before the model pauses."""

ProgressCallback = Callable[[AttemptRow], None]


@dataclass
class ScanOutcome:
    """Counts of what one call to :func:`execute_scan` stored."""

    run_id: str
    stored: int = 0
    already_stored: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    stopped: StopScan | None = None
    """Set when an ``on_attempt`` callback ended the scan early."""


class StopScan(Exception):
    """Raised by an ``on_attempt`` callback to end a scan cleanly after the attempt just stored.

    ``status`` becomes the run's status (for example ``stopped_budget``), with
    ``message`` as its error text; ``None`` leaves the status unchanged, for a
    caller that no longer owns the run. Outputs the backend has generated but
    not yet handed over are dropped; a resumed run generates them again.
    """

    def __init__(self, status: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def select_probes(options: ScanOptions) -> list[Probe]:
    """Return the probes a scan uses; raise on unknown names before any model loads."""
    probes: list[Probe] = []
    if options.probes != "none":
        probes.extend(load_library().select(options.probes))
    for path in options.prompt_files:
        imported = import_prompts(
            Path(path),
            fmt=options.prompt_format,
            prompt_column=options.prompt_column,
            goal_column=options.goal_column,
        )
        probes.append(_unique_id(imported, {probe.id for probe in probes}))
    if not probes:
        raise ConfigError("The scan selects no probes. Pass --probes or --prompts FILE.")
    for probe in probes:
        for name in probe.detectors:
            DETECTORS.get(name)
    return probes


def _unique_id(probe: Probe, taken: set[str]) -> Probe:
    """Rename an imported probe whose id clashes, e.g. two files named harmful_behaviors."""
    if probe.id not in taken:
        return probe
    number = 2
    while f"{probe.id}_{number}" in taken:
        number += 1
    return probe.model_copy(update={"id": f"{probe.id}_{number}"})


def run_facts(options: ScanOptions, backend: ModelBackend) -> dict[str, Any]:
    """Return what a run records about its environment: versions, hashes and host."""
    if len(options.prompt_files_sha256) == len(options.prompt_files):
        # Hashed when the scan was planned, and checked against the files then.
        files = dict(zip(options.prompt_files, options.prompt_files_sha256, strict=True))
    else:
        files = {path: sha256_of(Path(path)) for path in options.prompt_files}
    return {
        "redtier": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": backend.describe(),
        "prompt_files_sha256": files,
    }


def execute_scan(
    store: Store,
    run_id: str,
    plan: Sequence[Attempt],
    backend: ModelBackend,
    options: ScanOptions,
    on_attempt: ProgressCallback | None = None,
) -> ScanOutcome:
    """Generate and judge every planned attempt not yet stored, committing each one.

    The run's status becomes ``completed`` at the end, ``interrupted`` on
    Ctrl-C or SIGTERM (raised here as ``KeyboardInterrupt``), ``failed``
    when the backend raises, and the status a :class:`StopScan` raised by
    ``on_attempt`` names. Attempts stored before the stop are kept.
    """
    outcome = ScanOutcome(run_id=run_id)
    done = store.done_keys(run_id)
    todo = [attempt for attempt in plan if attempt.key not in done]
    outcome.already_stored = len(plan) - len(todo)
    config = GenerationConfig(
        max_new_tokens=options.max_new_tokens,
        temperature=options.temperature,
        seed=options.seed,
        batch_size=options.batch_size,
    )
    requests = [ChatRequest(prompt=a.prompt, system_prompt=a.system_prompt) for a in todo]
    overrides = _detector_overrides(options)
    store.set_status(run_id, "running")
    try:
        with BackgroundGenerations(
            backend, requests, config, ahead=GENERATE_AHEAD_BATCHES * config.batch_size
        ) as background:
            for arrived in background.batches(most=config.batch_size):
                for row in _to_rows(run_id, todo, arrived, options.threshold, overrides):
                    if store.add_attempt(row):
                        outcome.stored += 1
                        outcome.verdicts[row.verdict] = outcome.verdicts.get(row.verdict, 0) + 1
                    if on_attempt is not None:
                        on_attempt(row)
                release_free_heap()
    except StopScan as stop:
        if stop.status is not None:
            store.set_status(run_id, stop.status, stop.message)
        logger.info("Run %s stopped after %d attempts: %s", run_id, outcome.stored, stop.message)
        outcome.stopped = stop
        return outcome
    except KeyboardInterrupt:
        store.set_status(run_id, "interrupted", "stopped by the user or a signal")
        raise
    except Exception as error:
        store.set_status(run_id, "failed", f"{type(error).__name__}: {error}")
        raise
    store.set_status(run_id, "completed")
    return outcome


def _detector_overrides(options: ScanOptions) -> dict[str, Detector]:
    """Return the detectors that replace registered ones for this scan."""
    if not options.execute_code:
        return {}
    from redtier.detectors import MaliciousCodeDetector
    from redtier.execution import SandboxExecutor

    return {"malicious_code": MaliciousCodeDetector(executor=SandboxExecutor())}


def _to_rows(
    run_id: str,
    todo: Sequence[Attempt],
    arrived: Sequence[tuple[int, Generation]],
    threshold: float,
    overrides: dict[str, Detector],
) -> list[AttemptRow]:
    """Judge the generations that arrived together in one pass, and return their rows."""
    judged = [(todo[index], generation) for index, generation in arrived if generation.error is None]
    judgements = iter(
        judge_many(
            [(attempt, generation.text) for attempt, generation in judged],
            threshold=threshold,
            detectors=overrides,
        )
    )
    rows = []
    for index, generation in arrived:
        if generation.error is None:
            judgement = next(judgements)
        else:
            judgement = not_judged(f"generation failed: {generation.error}")
        rows.append(_to_row(run_id, todo[index], generation, judgement))
    return rows


def _to_row(
    run_id: str, attempt: Attempt, generation: Generation, judgement: Judgement
) -> AttemptRow:
    return AttemptRow(
        run_id=run_id,
        key=attempt.key,
        seq=attempt.seq,
        probe_id=attempt.probe_id,
        category=attempt.category.value,
        transform=attempt.transform,
        goal=attempt.goal,
        system_prompt=attempt.system_prompt,
        prompt=attempt.prompt,
        output=generation.text if generation.error is None else None,
        verdict=judgement.verdict.value,
        score=judgement.score,
        # The column is NOT NULL in databases made by earlier versions, so an error, which
        # has no confidence, stores 0. AttemptRow.judged_confidence reads it back as None.
        confidence=judgement.confidence if judgement.confidence is not None else 0.0,
        explanation=judgement.explanation,
        detector_results=[result.model_dump(mode="json") for result in judgement.results],
        tokens_in=generation.tokens_in,
        tokens_out=generation.tokens_out,
        latency_s=generation.latency_s,
        error=generation.error,
        created_at=utcnow(),
    )
