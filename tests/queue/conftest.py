"""Fixtures for queue tests that run the real `redtier` command in subprocesses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def cli_env(tmp_path: Path, model_cache: Path) -> dict[str, str]:
    """Environment for `redtier` subprocesses: a fresh database, the shared model cache."""
    env = dict(os.environ)
    env.update(
        HOME=str(tmp_path / "home"),
        REDTIER_DB=str(tmp_path / "results.db"),
        REDTIER_CACHE_DIR=str(model_cache),
        HF_HUB_OFFLINE="1",
        COLUMNS="200",
    )
    env.pop("REDTIER_CATALOG", None)
    env.pop("REDTIER_TIERS", None)
    return env
