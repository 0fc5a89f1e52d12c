"""Settings passed explicitly to every component: defaults, then environment, then flags.

Nothing reads the environment at import time. The CLI calls
:meth:`Settings.resolve` once and hands the result down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

ENV_DB = "REDTIER_DB"
ENV_CACHE_DIR = "REDTIER_CACHE_DIR"
ENV_CATALOG = "REDTIER_CATALOG"


class Settings(BaseModel):
    """Locations of the result database, the converted-weights cache and the user catalog."""

    model_config = ConfigDict(frozen=True)

    db_url: str
    """SQLAlchemy database URL; a plain path means an SQLite file."""
    cache_dir: Path
    """Folder for converted model weights."""
    catalog_file: Path | None = None
    """User catalog YAML that extends the built-in models."""

    @classmethod
    def resolve(
        cls,
        *,
        db: str | None = None,
        cache_dir: str | Path | None = None,
        catalog: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings from flags (given here), else the environment, else defaults."""
        env = os.environ if environ is None else environ
        home = Path(env.get("HOME") or Path.home())
        data_home = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
        cache_home = Path(env.get("XDG_CACHE_HOME") or home / ".cache")
        config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")

        db_value = db or env.get(ENV_DB) or str(data_home / "redtier" / "redtier.db")
        cache_value = cache_dir or env.get(ENV_CACHE_DIR) or default_cache_dir(cache_home)
        catalog_value: str | Path | None = catalog or env.get(ENV_CATALOG)
        if catalog_value is None:
            default_catalog = config_home / "redtier" / "models.yaml"
            catalog_value = default_catalog if default_catalog.is_file() else None
        return cls(
            db_url=to_database_url(db_value),
            cache_dir=Path(cache_value).expanduser(),
            catalog_file=Path(catalog_value).expanduser() if catalog_value else None,
        )


def to_database_url(value: str) -> str:
    """Return ``value`` as an SQLAlchemy URL: a URL stays, a path becomes ``sqlite:///``."""
    if "://" in value:
        return value
    return "sqlite:///" + str(Path(value).expanduser().resolve())


ROOT_CACHE_DIR = Path("/var/cache/redtier")


def default_cache_dir(cache_home: Path) -> Path:
    """Return the default cache folder.

    As root, sandboxed processes run as an unprivileged uid that cannot enter
    root's home, so the cache lives in ``/var/cache/redtier`` instead.
    """
    if os.geteuid() == 0:
        return ROOT_CACHE_DIR
    return cache_home / "redtier"
