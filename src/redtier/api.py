"""The short Python entry points: load a catalog model by name."""

from __future__ import annotations

from redtier.backends import ModelBackend, TransformersBackend
from redtier.catalog import DEFAULT_MODEL, load_catalog
from redtier.settings import Settings


def load_model(name: str = DEFAULT_MODEL, settings: Settings | None = None) -> ModelBackend:
    """Load the catalog model ``name`` on the CPU and return it ready to ``chat``."""
    settings = settings or Settings.resolve()
    entry = load_catalog(settings.catalog_file).get(name)
    return TransformersBackend.load(entry, settings)
