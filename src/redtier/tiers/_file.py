"""Read and validate tier files: the built-in tiers, then the user's file.

A user file has the format of :data:`BUILTIN_TIERS_YAML`. Its tiers replace
built-in tiers of the same name and add the others; its ``policy`` replaces
the built-in policy field by field. Every error names the file, the tier and
the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from redtier.errors import ConfigError
from redtier.tiers._builtin import BUILTIN_SOURCE, BUILTIN_TIERS_YAML
from redtier.tiers._tier import RoutingPolicy, Tier, TierSet

ENV_TIERS = "REDTIER_TIERS"
_TOP_LEVEL_KEYS = {"tiers", "policy"}


def resolve_tiers_file(
    flag: str | Path | None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """Return the tier file named by ``--tiers``, else by ``REDTIER_TIERS``, else None."""
    env = os.environ if environ is None else environ
    value = flag or env.get(ENV_TIERS)
    return Path(value).expanduser() if value else None


def load_tiers(user_file: Path | None = None) -> TierSet:
    """Return the built-in tiers, extended or overridden by ``user_file``."""
    builtin = parse_tiers(yaml.safe_load(BUILTIN_TIERS_YAML), BUILTIN_SOURCE)
    if user_file is None:
        return builtin
    user = read_tier_file(user_file)
    names = {tier.name for tier in user.tiers}
    tiers = [tier for tier in builtin.tiers if tier.name not in names] + list(user.tiers)
    policy = builtin.policy.model_copy(update=user.policy.model_dump(exclude_unset=True))
    return TierSet(tiers=tuple(tiers), policy=policy, sources=(BUILTIN_SOURCE, str(user_file)))


def read_tier_file(path: Path) -> TierSet:
    """Parse and validate one tier file; raise ``ConfigError`` naming the bad field."""
    if not path.is_file():
        raise ConfigError(
            f"Tier file {str(path)!r} not found. Create it, or unset REDTIER_TIERS / --tiers."
        )
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"Tier file {str(path)!r} is not valid YAML: {error}") from None
    return parse_tiers(document, str(path))


def parse_tiers(document: Any, source: str) -> TierSet:
    """Validate a parsed tier document; ``source`` names it in error messages."""
    if not isinstance(document, dict):
        raise ConfigError(
            f"{source}: expected a mapping with a `tiers:` list, got {type(document).__name__}."
        )
    unknown = set(document) - _TOP_LEVEL_KEYS
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level field(s) {', '.join(sorted(map(str, unknown)))}; "
            "expected `tiers` and optionally `policy`."
        )
    raw_tiers = document.get("tiers", [])
    if not isinstance(raw_tiers, list):
        raise ConfigError(
            f"{source}: `tiers` must be a list of tiers, got {type(raw_tiers).__name__}."
        )
    tiers = [_parse_tier(raw, f"{source}: tiers[{index}]") for index, raw in enumerate(raw_tiers)]
    seen: set[str] = set()
    for index, tier in enumerate(tiers):
        if tier.name in seen:
            raise ConfigError(
                f"{source}: tiers[{index}].name: tier {tier.name!r} is defined twice."
            )
        seen.add(tier.name)
    policy = _parse_policy(document.get("policy") or {}, f"{source}: policy")
    return TierSet(tiers=tuple(tiers), policy=policy, sources=(source,))


def _parse_tier(raw: Any, where: str) -> Tier:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with `name`, `memory`, ..., got {raw!r}.")
    name = raw.get("name")
    if isinstance(name, str):
        where = f"{where} ({name})"
    try:
        return Tier.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{where}: {_describe(error)}") from None


def _parse_policy(raw: Any, where: str) -> RoutingPolicy:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}.")
    try:
        return RoutingPolicy.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{where}: {_describe(error)}") from None


def _describe(error: ValidationError) -> str:
    """Return each problem as ``field.path: message``, with YAML field names."""
    problems = []
    for item in error.errors():
        path = ".".join(_field_name(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{path}: {message}" if path else message)
    return "; ".join(problems) + "."


def _field_name(part: str | int) -> str:
    names = {"memory_bytes": "memory"}
    return f"[{part}]" if isinstance(part, int) else names.get(part, part)
