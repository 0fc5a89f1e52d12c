"""Choose how a scan's model runs: in a sandboxed worker (the default) or in this process."""

from __future__ import annotations

import logging

from redtier.backends import ModelBackend, Runtime, SandboxedBackend, WorkerOptions, load_model
from redtier.catalog import ModelEntry, Precision
from redtier.errors import UnknownNameError
from redtier.sandbox import SANDBOXES, Limits, get_sandbox
from redtier.settings import Settings

logger = logging.getLogger(__name__)

NO_SANDBOX = "none"


def check_model_sandbox(name: str) -> None:
    """Raise UnknownNameError unless a model can load in sandbox ``name``, ``none`` included."""
    accepted = ["auto", NO_SANDBOX, *SANDBOXES.names()]
    if name not in accepted:
        raise UnknownNameError("sandbox", name, accepted)


def load_backend(
    entry: ModelEntry,
    settings: Settings,
    *,
    sandbox: str = "auto",
    precision: Precision = Precision.FP32,
    threads: int | None = None,
    limits: Limits | None = None,
    batch_timeout_s: float | None = None,
    runtime: Runtime = Runtime.TRANSFORMERS,
) -> ModelBackend:
    """Load ``entry`` in a worker inside ``sandbox``, or in this process when ``sandbox`` is ``none``.

    ``auto`` picks the strongest sandbox that works here (see ``redtier doctor``).
    ``limits`` caps the worker (by default sized from the model's memory
    estimate), and ``batch_timeout_s`` is the wall time one batch may take
    before the worker is killed and that batch's attempts are stored as
    errors. Neither applies without a sandbox, which the log says. ``runtime``
    names the library that runs the model (llama.cpp is an optional extra).
    """
    check_model_sandbox(sandbox)
    if sandbox == NO_SANDBOX:
        logger.warning(
            "Loading %s without a sandbox: model files and generation run in this process%s.",
            entry.name,
            ", and no memory or time limit applies" if limits is not None else "",
        )
        return load_model(entry, settings, runtime, precision=precision, threads=threads)
    chosen = get_sandbox(sandbox)
    logger.info("Model worker sandbox: %s", chosen.describe())
    options = WorkerOptions(runtime=runtime, precision=precision, threads=threads, limits=limits)
    if batch_timeout_s is not None:
        options = options.model_copy(update={"batch_timeout_s": batch_timeout_s})
    return SandboxedBackend.start(entry, settings, chosen, options)
