"""Choose how a scan's model runs: in a sandboxed worker (the default) or in this process."""

from __future__ import annotations

import logging

from redtier.backends import ModelBackend, SandboxedBackend, TransformersBackend, WorkerOptions
from redtier.catalog import ModelEntry
from redtier.sandbox import Limits, get_sandbox
from redtier.settings import Settings

logger = logging.getLogger(__name__)

NO_SANDBOX = "none"


def load_backend(
    entry: ModelEntry,
    settings: Settings,
    *,
    sandbox: str = "auto",
    limits: Limits | None = None,
) -> ModelBackend:
    """Load ``entry`` in a worker inside ``sandbox``, or in this process when ``sandbox`` is ``none``.

    ``auto`` picks the strongest sandbox that works here (see ``redtier doctor``).
    """
    if sandbox == NO_SANDBOX:
        logger.warning(
            "Loading %s without a sandbox: model files and generation run in this process.", entry.name
        )
        return TransformersBackend.load(entry, settings)
    chosen = get_sandbox(sandbox)
    logger.info("Model worker sandbox: %s", chosen.describe())
    return SandboxedBackend.start(entry, settings, chosen, WorkerOptions(limits=limits))
