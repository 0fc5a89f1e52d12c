"""The bundled probe library: YAML files loaded and validated into probes.

Each file under ``library/`` contains one category::

    category: jailbreak
    defaults:                 # optional, and a probe's own keys override them
      detectors: [harmful_compliance]
    probes:
      - id: jailbreak.grandma
        goal: Give step-by-step instructions for ...
        tags: [weapons]
        prompts:
          - ...

A probe's ``category`` comes from its file, and its id must start with that
category. Loading fails with :class:`~redtier.errors.ConfigError`, naming the file
and probe, when any probe is invalid.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable, Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import yaml
from pydantic import ValidationError

from redtier.errors import ConfigError, UnknownNameError
from redtier.probes._probe import CANARY_PLACEHOLDER, Category, Probe
from redtier.registry import Registry

ALL = "all"
"""The selection item that selects every probe."""

_DEFAULT_KEYS = frozenset({"detectors", "uses_canary", "transformable", "system_prompt", "tags"})
"""Probe fields that a library file's ``defaults`` mapping may set."""

_GLOB_CHARACTERS = frozenset("*?[")

_SELECTION_HINT = (
    "Select probes by id (jailbreak.grandma), category (harmful), "
    "glob (malicious_code.*) or 'all', separated by commas."
)


class ProbeLibrary:
    """An ordered, validated set of probes with unique ids."""

    def __init__(self, probes: Iterable[Probe]) -> None:
        """Validate ``probes`` and index them by id.

        Raises:
            ConfigError: two probes share an id, or a probe's ``{canary}`` use does
                not match its ``uses_canary`` flag.
        """
        self.probes: tuple[Probe, ...] = tuple(probes)
        self._registry: Registry[Probe] = Registry("probe")
        for probe in self.probes:
            check_canary_use(probe)
            if probe.id in self._registry:
                raise ConfigError(
                    f"Duplicate probe id {probe.id!r}. Every probe id must be unique."
                )
            self._registry.add(probe.id, probe)

    @classmethod
    def from_directory(cls, directory: Traversable) -> ProbeLibrary:
        """Load every ``*.yaml`` file in ``directory``, ordered by category, then by file name."""
        if not directory.is_dir():
            raise ConfigError(f"Probe library folder {directory} not found.")
        files = [entry for entry in directory.iterdir() if entry.name.endswith(".yaml")]
        loaded = [_read_library_file(entry) for entry in sorted(files, key=lambda f: f.name)]
        category_order = list(Category)
        loaded.sort(key=lambda item: category_order.index(item[0]))
        return cls(probe for _, probes in loaded for probe in probes)

    def get(self, probe_id: str) -> Probe:
        """Return the probe with id ``probe_id`` or raise ``UnknownNameError`` with close ids."""
        return self._registry.get(probe_id)

    def categories(self) -> list[Category]:
        """Return the categories that have at least one probe, in library order."""
        return list(dict.fromkeys(probe.category for probe in self.probes))

    def select(self, selection: str | None) -> list[Probe]:
        """Return the probes a selection names, in library order, each once.

        ``selection`` is a comma-separated list of probe ids, categories, globs over
        ids (``malicious_code.*``) or ``all``. ``None`` or an empty string selects
        every probe. Every item is checked before any probe is returned.

        Raises:
            UnknownNameError: an item matches no probe id, category or glob. The
                error lists the closest ids and categories.
        """
        items = [item.strip() for item in (selection or "").split(",") if item.strip()]
        if not items:
            return list(self.probes)
        selected: set[str] = set()
        for item in items:
            selected.update(self._match(item))
        return [probe for probe in self.probes if probe.id in selected]

    def _match(self, item: str) -> list[str]:
        """Return the ids of the probes one selection item names."""
        if item == ALL:
            matched = [probe.id for probe in self.probes]
        elif item in {category.value for category in self.categories()}:
            matched = [probe.id for probe in self.probes if probe.category == item]
        elif _GLOB_CHARACTERS & set(item):
            matched = [probe.id for probe in self.probes if fnmatch.fnmatchcase(probe.id, item)]
        else:
            matched = [item] if item in self._registry else []
        if not matched:
            known = [*self._registry.names(), *self.categories(), ALL]
            raise UnknownNameError("probe or category", item, known, hint=_SELECTION_HINT)
        return matched

    def __len__(self) -> int:
        return len(self.probes)

    def __iter__(self) -> Iterator[Probe]:
        return iter(self.probes)

    def __contains__(self, probe_id: object) -> bool:
        return probe_id in self._registry


@functools.cache
def load_library() -> ProbeLibrary:
    """Load the probe library that ships with redtier, once per process.

    Probes are frozen and no method of the library changes it, so every caller
    shares one instance.
    """
    return ProbeLibrary.from_directory(resources.files("redtier.probes") / "library")


def check_canary_use(probe: Probe) -> None:
    """Raise ``ConfigError`` unless ``probe`` contains ``{canary}`` exactly when it uses a canary.

    A canary probe needs the placeholder in its system prompt or else in every
    prompt, because an attempt whose text lacks it could never reveal the canary.
    """
    in_system = CANARY_PLACEHOLDER in (probe.system_prompt or "")
    prompts_with = sum(CANARY_PLACEHOLDER in prompt for prompt in probe.prompts)
    if probe.uses_canary and not in_system and prompts_with < len(probe.prompts):
        raise ConfigError(
            f"Probe {probe.id!r} sets uses_canary but {CANARY_PLACEHOLDER} is missing from "
            f"{len(probe.prompts) - prompts_with} of its {len(probe.prompts)} prompts and from "
            "its system prompt. Add the placeholder where the secret or marker goes."
        )
    if not probe.uses_canary and (in_system or prompts_with):
        raise ConfigError(
            f"Probe {probe.id!r} contains {CANARY_PLACEHOLDER} but does not set uses_canary. "
            "Set uses_canary: true, or remove the placeholder."
        )


def _read_library_file(file: Traversable) -> tuple[Category, list[Probe]]:
    """Parse one library file into its category and probes."""
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"Invalid YAML in probe library file {file.name}: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("probes"), list):
        raise ConfigError(f"Probe library file {file.name} must be a mapping with a 'probes' list.")
    category = _parse_category(file.name, document.get("category"))
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict) or not set(defaults) <= _DEFAULT_KEYS:
        raise ConfigError(
            f"Invalid 'defaults' in probe library file {file.name}: it must be a mapping "
            f"with keys among {', '.join(sorted(_DEFAULT_KEYS))}."
        )
    probes = [_build_probe(file.name, category, defaults, entry) for entry in document["probes"]]
    return category, probes


def _parse_category(file_name: str, value: object) -> Category:
    known = [category.value for category in Category]
    if isinstance(value, str) and value in known:
        return Category(value)
    raise ConfigError(
        f"Probe library file {file_name} has invalid category {value!r}. "
        f"Use one of: {', '.join(known)}."
    )


def _build_probe(
    file_name: str, category: Category, defaults: dict[str, Any], entry: object
) -> Probe:
    """Merge ``defaults`` into one probe entry and validate the result."""
    if not isinstance(entry, dict):
        raise ConfigError(f"Probe library file {file_name} has a probe that is not a mapping.")
    fields = {**defaults, **entry, "category": category}
    probe_id = str(fields.get("id", "<no id>"))
    where = f"probe {probe_id!r} in {file_name}"
    if not probe_id.startswith(f"{category.value}."):
        raise ConfigError(f"Invalid {where}: its id must start with '{category.value}.'.")
    detectors = fields.get("detectors")
    if not isinstance(detectors, list) or not all(isinstance(name, str) for name in detectors):
        raise ConfigError(f"Invalid {where}: detectors must be a list of detector names.")
    try:
        probe = Probe.model_validate(fields)
    except ValidationError as error:
        raise ConfigError(f"Invalid {where}: {error}") from error
    try:
        check_canary_use(probe)
    except ConfigError as error:
        raise ConfigError(f"Invalid {where}: {error}") from error
    return probe
