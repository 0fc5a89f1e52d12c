"""Shared fixtures: a real SQLite store, the real bundled model, the shared data folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from redtier.backends import TransformersBackend
from redtier.catalog import DEFAULT_MODEL, load_catalog
from redtier.settings import Settings
from redtier.store import Store
from tests._shared_data import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public data sets next to the repository; tests that need them skip without them."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (set REDTIER_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def model_cache() -> Iterator[Path]:
    """One converted-weights cache for the whole session, so the GGUF converts once.

    It is made under /tmp with mode 755, unlike pytest's private tmp folders,
    because the sandboxed model worker runs as an unprivileged uid that must
    reach it.
    """
    configured = os.environ.get("REDTIER_TEST_CACHE_DIR")
    if configured:
        yield Path(configured)
        return
    path = Path(tempfile.mkdtemp(prefix="redtier-test-cache-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def bundled_model(model_cache: Path) -> Iterator[TransformersBackend]:
    """The real SmolLM2-135M-Instruct, loaded once per session."""
    settings = Settings(db_url="sqlite://", cache_dir=model_cache)
    backend = TransformersBackend.load(load_catalog().get(DEFAULT_MODEL), settings)
    yield backend
    backend.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    """A store on a real SQLite file."""
    result = Store(f"sqlite:///{db_path}")
    yield result
    result.close()
