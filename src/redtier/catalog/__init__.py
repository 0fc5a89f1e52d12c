"""The model catalog: sizes, sources and memory needs of the models redtier knows."""

from redtier.catalog._builtin import BUILTIN_MODELS, DEFAULT_MODEL
from redtier.catalog._catalog import Catalog, load_catalog, read_catalog_file
from redtier.catalog._entry import ModelEntry, ModelFormat, SourceKind
from redtier.catalog._memory import (
    QUANTIZED,
    Device,
    MemoryEstimate,
    Precision,
    estimate_memory,
    format_bytes,
    kv_cache_bytes,
    memory_breakdown,
    stored_precision,
    weight_bytes,
)

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "Catalog",
    "Device",
    "MemoryEstimate",
    "ModelEntry",
    "ModelFormat",
    "Precision",
    "QUANTIZED",
    "SourceKind",
    "estimate_memory",
    "format_bytes",
    "kv_cache_bytes",
    "load_catalog",
    "memory_breakdown",
    "read_catalog_file",
    "stored_precision",
    "weight_bytes",
]
