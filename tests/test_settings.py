from __future__ import annotations

import os
from pathlib import Path

from redtier.settings import Settings, to_database_url


def test_defaults_follow_xdg_folders(tmp_path: Path) -> None:
    settings = Settings.resolve(environ={"HOME": str(tmp_path)})
    assert settings.db_url == f"sqlite:///{tmp_path}/.local/share/redtier/redtier.db"
    expected_cache = Path("/var/cache/redtier") if os.geteuid() == 0 else tmp_path / ".cache" / "redtier"
    assert settings.cache_dir == expected_cache
    assert settings.catalog_file is None


def test_environment_overrides_defaults(tmp_path: Path) -> None:
    environ = {
        "HOME": str(tmp_path),
        "REDTIER_DB": str(tmp_path / "env.db"),
        "REDTIER_CACHE_DIR": str(tmp_path / "cache"),
        "REDTIER_CATALOG": str(tmp_path / "models.yaml"),
    }
    settings = Settings.resolve(environ=environ)
    assert settings.db_url == f"sqlite:///{tmp_path}/env.db"
    assert settings.cache_dir == tmp_path / "cache"
    assert settings.catalog_file == tmp_path / "models.yaml"


def test_flags_override_environment(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path), "REDTIER_DB": str(tmp_path / "env.db")}
    settings = Settings.resolve(db="postgresql://u:p@localhost/redtier", environ=environ)
    assert settings.db_url == "postgresql://u:p@localhost/redtier"


def test_user_catalog_found_in_config_folder(tmp_path: Path) -> None:
    catalog = tmp_path / ".config" / "redtier" / "models.yaml"
    catalog.parent.mkdir(parents=True)
    catalog.write_text("models: []\n")
    assert Settings.resolve(environ={"HOME": str(tmp_path)}).catalog_file == catalog


def test_relative_path_becomes_absolute_sqlite_url(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert to_database_url("runs.db") == f"sqlite:///{tmp_path}/runs.db"
