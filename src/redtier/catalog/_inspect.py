"""Read a local model's size and context length from its files, without loading it."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from redtier.catalog._entry import ModelFormat
from redtier.errors import ConfigError, ModelLoadError

_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")


def inspect_local_model(path: Path) -> dict[str, Any]:
    """Return catalog fields (format, params, context_length, ...) read from ``path``."""
    if path.is_file() and path.suffix == ".gguf":
        return _inspect_gguf(path)
    if path.is_dir():
        return _inspect_folder(path)
    raise ConfigError(
        f"Model source {str(path)!r} is neither a Hugging Face folder nor a .gguf file."
    )


def _inspect_gguf(path: Path) -> dict[str, Any]:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        params = sum(int(t.n_elements) for t in reader.tensors)
    # A truncated or corrupt file fails deep inside the reader with many kinds of error.
    except Exception as error:  # noqa: BLE001
        raise ModelLoadError(
            f"GGUF file {str(path)!r} cannot be read ({type(error).__name__}: {error}). It may be "
            "truncated or corrupt: download it again."
        ) from None
    facts: dict[str, Any] = {
        "format": ModelFormat.GGUF,
        "params": params,
        "download_bytes": path.stat().st_size,
    }
    arch_field = reader.fields.get("general.architecture")
    if arch_field is not None:
        arch = bytes(arch_field.parts[arch_field.data[0]]).decode("utf-8", "replace")
        facts["family"] = arch
        context = reader.fields.get(f"{arch}.context_length")
        if context is not None:
            facts["context_length"] = int(context.parts[context.data[0]][0])
    facts.setdefault("family", "unknown")
    facts.setdefault("context_length", 2048)
    return facts


def _inspect_folder(path: Path) -> dict[str, Any]:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConfigError(
            f"Model folder {str(path)!r} has no config.json: it is not a Hugging Face model folder."
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{config_file} is not valid JSON: {error}.") from None
    facts: dict[str, Any] = {
        "format": ModelFormat.HF,
        "family": config.get("model_type", "unknown"),
        "context_length": next((config[k] for k in _CONTEXT_KEYS if k in config), 2048),
    }
    weights = sorted(path.glob("*.safetensors"))
    if weights:
        try:
            facts["params"] = sum(_count_safetensors_params(f) for f in weights)
        except (struct.error, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
            raise ConfigError(
                f"Model folder {str(path)!r} has a safetensors file whose header cannot be read "
                f"({type(error).__name__}). The file may be truncated: copy it again."
            ) from None
        facts["download_bytes"] = sum(f.stat().st_size for f in weights)
    else:
        raise ConfigError(
            f"Model folder {str(path)!r} has no .safetensors weights. Give `params:` in the "
            "entry, or convert the checkpoint to safetensors."
        )
    template = path / "chat_template.jinja"
    tokenizer_config = path / "tokenizer_config.json"
    if template.is_file() or (
        tokenizer_config.is_file() and "chat_template" in tokenizer_config.read_text("utf-8")
    ):
        facts["chat"] = True
    return facts


def _count_safetensors_params(path: Path) -> int:
    """Count parameters from a safetensors header (8-byte length, then JSON)."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    total = 0
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in tensor["shape"]:
            count *= dim
        total += count
    return total
