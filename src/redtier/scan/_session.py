"""One scan from options to a finished run: the path shared by the CLI and queue workers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redtier.backends import ModelBackend, sha256_of
from redtier.catalog import ModelEntry, load_catalog
from redtier.errors import ConfigError
from redtier.probes import Attempt
from redtier.scan._options import ScanOptions
from redtier.scan._plan import build_plan
from redtier.scan._runner import ProgressCallback, ScanOutcome, execute_scan, run_facts, select_probes
from redtier.settings import Settings
from redtier.store import RunRow, Store

logger = logging.getLogger(__name__)

BackendLoader = Callable[[ModelEntry], ModelBackend]
StartCallback = Callable[[RunRow, int], None]
"""Called with the run and the number of attempts still to make, once the model is loaded."""


@dataclass(frozen=True)
class PreparedScan:
    """Everything checked and planned before the model loads."""

    options: ScanOptions
    entry: ModelEntry
    plan: list[Attempt]
    run: RunRow | None
    """The run being resumed, or None for a new run."""


def prepare_scan(
    settings: Settings, store: Store, options: ScanOptions | None = None, resume: str | None = None
) -> PreparedScan:
    """Validate names and build the plan; raise before anything heavy happens."""
    run = store.get_run(resume) if resume is not None else None
    if run is not None:
        pid = store.live_owner_pid(run)
        if pid is not None:
            raise ConfigError(
                f"Run {run.id} is still being scanned by process {pid} on this host, so resuming "
                f"it now would generate every attempt twice. Wait for it, or stop it (kill {pid}) "
                "and resume then."
            )
        options = ScanOptions.model_validate(run.options)
    if options is None:
        raise ConfigError("prepare_scan needs scan options or a run id to resume.")
    options = pin_prompt_files(options)
    entry = load_catalog(settings.catalog_file).get(options.model)
    plan = build_plan(select_probes(options), options)
    return PreparedScan(options=options, entry=entry, plan=plan, run=run)


def run_prepared(
    store: Store,
    prepared: PreparedScan,
    backend: ModelBackend,
    *,
    on_start: StartCallback | None = None,
    on_attempt: ProgressCallback | None = None,
) -> ScanOutcome:
    """Create (or check and reuse) the run, then execute the plan on ``backend``."""
    facts = run_facts(prepared.options, backend)
    run = prepared.run
    if run is None:
        options = prepared.options.model_dump(mode="json")
        run = store.create_run(prepared.entry.name, options, facts, len(prepared.plan))
    else:
        check_same_weights(run, facts)
        store.update_facts(run.id, {"resumed_with": facts})
    if on_start is not None:
        on_start(run, len(prepared.plan) - len(store.done_keys(run.id)))
    return execute_scan(store, run.id, prepared.plan, backend, prepared.options, on_attempt)


def pin_prompt_files(options: ScanOptions) -> ScanOptions:
    """Return ``options`` with each prompt file's SHA-256, checking digests already recorded.

    Raises:
        ConfigError: a prompt file differs from the one the scan was planned with.
    """
    digests = tuple(sha256_of(Path(path)) for path in options.prompt_files if Path(path).is_file())
    if len(digests) != len(options.prompt_files):
        return options  # a missing file gets the importer's own error when the probes load
    recorded = options.prompt_files_sha256
    if not recorded:
        return options.model_copy(update={"prompt_files_sha256": digests})
    for path, before, now in zip(options.prompt_files, recorded, digests, strict=False):
        if before != now:
            raise ConfigError(
                f"Prompt file {path} changed after the scan was planned (SHA-256 {before[:12]}… "
                f"then, {now[:12]}… now), so its attempts would differ from the planned ones. "
                "Restore the file, or submit or start the scan again."
            )
    return options


def check_same_weights(run: RunRow, facts: dict[str, object]) -> None:
    """Refuse to resume a run with different model weights than it started with."""
    before = _weights_hash(run.facts)
    now = _weights_hash(facts)
    if before and now and before != now:
        raise ConfigError(
            f"Run {run.id} was made with weights {before[:12]}…, but {run.model} now has "
            f"weights {now[:12]}…. Start a new scan instead of resuming."
        )


def _weights_hash(facts: dict[str, object]) -> str | None:
    backend = facts.get("backend")
    if isinstance(backend, dict):
        value = backend.get("weights_sha256")
        return str(value) if value else None
    return None
