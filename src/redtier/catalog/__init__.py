"""The model catalog: sizes, sources and memory needs of the models redtier knows."""

from redtier.catalog._builtin import BUILTIN_MODELS, DEFAULT_MODEL
from redtier.catalog._catalog import Catalog, load_catalog, read_catalog_file
from redtier.catalog._entry import ModelEntry, ModelFormat, SourceKind
from redtier.catalog._memory import (
    Precision,
    estimate_memory,
    format_bytes,
    kv_cache_bytes,
    weight_bytes,
)

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "Catalog",
    "ModelEntry",
    "ModelFormat",
    "Precision",
    "SourceKind",
    "estimate_memory",
    "format_bytes",
    "kv_cache_bytes",
    "load_catalog",
    "read_catalog_file",
    "weight_bytes",
]
