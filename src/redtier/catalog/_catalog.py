"""The model catalog: built-in entries plus the user's own YAML file.

A user file looks like::

    models:
      - name: my-gpt2
        source: /data/models/gpt2          # a local Hugging Face folder
      - name: tiny-chat
        source: /data/tiny.Q8_0.gguf       # a GGUF file
        chat: true
      - name: qwen-0.5b
        source: hub:Qwen/Qwen2.5-0.5B-Instruct
        params: 494032768
        chat: true

``source`` is a local folder, a ``.gguf`` file, or ``hub:<org>/<name>``. For
local sources the parameter count and context length are read from the files
when the entry omits them. A user entry with a built-in name replaces it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from redtier.catalog._builtin import BUILTIN_MODELS
from redtier.catalog._entry import ModelEntry, ModelFormat, SourceKind
from redtier.catalog._inspect import inspect_local_model
from redtier.errors import ConfigError, UnknownNameError

logger = logging.getLogger(__name__)

HUB_PREFIX = "hub:"


class Catalog:
    """Model entries by name, in display order."""

    def __init__(self, entries: tuple[ModelEntry, ...] | list[ModelEntry]) -> None:
        self._entries: dict[str, ModelEntry] = {}
        for entry in entries:
            self._entries[entry.name] = entry

    def get(self, name: str) -> ModelEntry:
        """Return the entry called ``name`` or raise ``UnknownNameError``."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                "model",
                name,
                self._entries,
                hint="Run `redtier models` for the catalog, or add an entry to a catalog "
                "file (--catalog FILE or REDTIER_CATALOG).",
            ) from None

    def names(self) -> list[str]:
        """Return every model name in display order."""
        return list(self._entries)

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def load_catalog(user_file: Path | None = None) -> Catalog:
    """Return the built-in catalog, extended or overridden by ``user_file``."""
    entries = list(BUILTIN_MODELS)
    if user_file is not None:
        user_entries = read_catalog_file(user_file)
        user_names = {entry.name for entry in user_entries}
        entries = [e for e in entries if e.name not in user_names] + user_entries
    return Catalog(entries)


def read_catalog_file(path: Path) -> list[ModelEntry]:
    """Parse and validate a user catalog file."""
    if not path.is_file():
        raise ConfigError(
            f"Catalog file {str(path)!r} not found. Create it, or unset REDTIER_CATALOG / --catalog."
        )
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"Catalog file {str(path)!r} is not UTF-8 text. Save it as UTF-8.") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"Catalog file {str(path)!r} is not valid YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise ConfigError(
            f"Catalog file {str(path)!r} must contain a top-level `models:` list of entries."
        )
    entries: list[ModelEntry] = []
    for index, raw in enumerate(document["models"]):
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: models[{index}] must be a mapping, got {raw!r}.")
        entry = _parse_user_entry(raw, path.parent, f"{path}: models[{index}]")
        if any(existing.name == entry.name for existing in entries):
            raise ConfigError(f"{path}: models[{index}] repeats the name {entry.name!r}; names must be unique.")
        entries.append(entry)
    return entries


def _parse_user_entry(raw: dict[str, Any], base_dir: Path, where: str) -> ModelEntry:
    fields = dict(raw)
    source = fields.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(
            f"{where}: `source` is missing. Give a local folder, a .gguf file, or hub:<org>/<name>."
        )
    if source.startswith(HUB_PREFIX):
        fields.update(source_kind=SourceKind.HUB, source=source[len(HUB_PREFIX) :])
        fields.setdefault("format", ModelFormat.HF)
        fields.setdefault("family", "unknown")
        if "params" not in fields or "context_length" not in fields:
            raise ConfigError(
                f"{where}: a hub: source needs `params` and `context_length`, since redtier "
                "estimates memory before downloading."
            )
    else:
        path = Path(source).expanduser()
        if not path.is_absolute():
            path = (base_dir / path).resolve()
        if not path.exists():
            raise ConfigError(f"{where}: source {str(path)!r} does not exist.")
        facts = inspect_local_model(path)
        fields["source_kind"] = SourceKind.PATH
        fields["source"] = str(path)
        for key, value in facts.items():
            fields.setdefault(key, value)
    fields.setdefault("chat", False)
    try:
        return ModelEntry(**fields)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"{where}: invalid entry ({problems}).") from None
