"""The libraries that can run a model, and loading a model with the one a scan names."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from redtier.backends._base import ModelBackend
from redtier.catalog import ModelEntry, Precision
from redtier.errors import ConfigError
from redtier.settings import Settings


class Runtime(StrEnum):
    """The library that loads a model and generates with it."""

    TRANSFORMERS = "transformers"
    """PyTorch and transformers, with continuous batching; every model format (the default)."""
    LLAMACPP = "llamacpp"
    """llama.cpp through the optional llama-cpp-python package; GGUF files only, one prompt at a time."""


def load_model(
    entry: ModelEntry,
    settings: Settings,
    runtime: Runtime = Runtime.TRANSFORMERS,
    *,
    precision: Precision = Precision.FP32,
    threads: int | None = None,
) -> ModelBackend:
    """Load ``entry`` in this process with ``runtime``."""
    if runtime is Runtime.LLAMACPP:
        from redtier.backends._llamacpp import LlamaCppBackend

        _check_precision(runtime, precision)
        return LlamaCppBackend.load(entry, settings, threads=threads)
    from redtier.backends._transformers import TransformersBackend

    return TransformersBackend.load(entry, settings, precision=precision, threads=threads)


def load_from_weights(
    entry: ModelEntry,
    weights: Path,
    file_hash: str,
    cache_dir: Path,
    runtime: Runtime = Runtime.TRANSFORMERS,
    *,
    precision: Precision = Precision.FP32,
    threads: int | None = None,
) -> ModelBackend:
    """Load weights that the caller has located and checked (the model worker's entry point)."""
    if runtime is Runtime.LLAMACPP:
        from redtier.backends._llamacpp import LlamaCppBackend

        _check_precision(runtime, precision)
        return LlamaCppBackend.from_weights(entry, weights, file_hash, threads=threads)
    from redtier.backends._transformers import TransformersBackend

    return TransformersBackend.from_weights(
        entry, weights, file_hash, cache_dir, precision=precision, threads=threads
    )


def _check_precision(runtime: Runtime, precision: Precision) -> None:
    if precision is not Precision.FP32:
        raise ConfigError(
            f"The {runtime.value} runtime runs a GGUF file at the precision stored in it, so "
            f"--precision {precision.value} is not supported. Leave --precision unset."
        )
