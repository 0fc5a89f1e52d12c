"""Convert a GGUF file to a safetensors folder once, then load that folder.

transformers dequantizes GGUF tensors on every load, which takes 15–60 s on
a small CPU. The converted folder loads in well under a second. The cache key
is the GGUF file's SHA-256 and the transformers version, so a changed file or
library never reuses stale weights.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from redtier.errors import ModelLoadError

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".redtier-complete"


def cached_gguf_folder(gguf_file: Path, file_sha256: str, cache_dir: Path) -> Path:
    """Return a folder of safetensors weights converted from ``gguf_file``."""
    import transformers

    folder = cache_dir / "gguf" / f"{file_sha256[:16]}-transformers-{transformers.__version__}"
    if (folder / COMPLETE_MARKER).is_file():
        logger.info("Using converted weights cached in %s", folder)
        return folder
    logger.info("Converting %s to safetensors in %s (once per file)", gguf_file, folder)
    _convert(gguf_file, folder)
    return folder


def _convert(gguf_file: Path, folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32
            )
        except (ValueError, OSError, KeyError, EOFError, RuntimeError) as error:
            raise ModelLoadError(
                f"GGUF file {str(gguf_file)!r} could not be read ({type(error).__name__}: "
                f"{error}). The file may be truncated or corrupt: reinstall the package or "
                "download the file again."
            ) from None
        # The GGUF quantizer marks the model as not serializable; the weights are
        # plain fp32 tensors by now, so saving them without it is exact.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / COMPLETE_MARKER).write_text(str(gguf_file) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
