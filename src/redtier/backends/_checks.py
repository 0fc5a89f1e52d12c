"""Checks on model files before anything loads them.

Pickle checkpoints (``.bin``, ``.pt``, ``.pth``, ``.ckpt``, ``.pkl``) can run
arbitrary code when unpickled, so redtier refuses them by default and names
what a scan with picklescan found in them. Weights in safetensors or GGUF are
plain data and pass.
"""

from __future__ import annotations

import logging
from pathlib import Path

from redtier.catalog import ModelEntry
from redtier.errors import ModelLoadError

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})


def pickle_files(weights: Path) -> list[Path]:
    """Return the pickle checkpoints among a model's files."""
    if weights.is_file():
        return [weights] if weights.suffix in PICKLE_SUFFIXES else []
    return sorted(p for p in weights.rglob("*") if p.is_file() and p.suffix in PICKLE_SUFFIXES)


def check_model_files(entry: ModelEntry, weights: Path, *, allow_pickle: bool = False) -> None:
    """Raise ``ModelLoadError`` if the weights include pickle files that are not allowed."""
    found = pickle_files(weights)
    if not found:
        return
    findings = [f"{path.name}: {scan_pickle(path)}" for path in found]
    has_safetensors = weights.is_dir() and any(weights.glob("*.safetensors"))
    if has_safetensors:
        logger.warning(
            "Model %s has pickle files next to its safetensors weights; only safetensors are "
            "loaded. %s",
            entry.name,
            "; ".join(findings),
        )
        return
    if allow_pickle:
        logger.warning("Loading pickle weights of %s inside the sandbox: %s", entry.name, "; ".join(findings))
        return
    raise ModelLoadError(
        f"Model {entry.name!r} has only pickle weights ({'; '.join(findings)}). Unpickling can "
        "run arbitrary code, so redtier refuses them. Convert the checkpoint to safetensors on a "
        "machine you trust (load it with transformers, then model.save_pretrained(folder, "
        "safe_serialization=True)) and point the catalog entry at that folder."
    )


def scan_pickle(path: Path) -> str:
    """Return picklescan's summary of the imports a pickle file would run."""
    try:
        from picklescan.scanner import scan_file_path
    except ImportError:
        return "not scanned (install picklescan)"
    result = scan_file_path(str(path))
    if result.scan_err:
        return "could not be scanned"
    dangerous = [f"{g.module}.{g.name}" for g in result.globals if getattr(g.safety, "value", "") == "dangerous"]
    if dangerous:
        return "dangerous imports " + ", ".join(sorted(set(dangerous)))
    return f"{len(result.globals)} imports, none known to be dangerous"
