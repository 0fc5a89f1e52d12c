"""Stored weight hashes are reused only while the file is unchanged."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from redtier.backends import _hash_cache
from redtier.backends._hash_cache import cached_sha256


def test_unchanged_file_reuses_stored_hash(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_hash_cache, "RECENT_S", 0.0)
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"weights v1")
    first = cached_sha256(weights, tmp_path / "cache")
    assert first == hashlib.sha256(b"weights v1").hexdigest()

    def fail(_path: Path) -> str:
        raise AssertionError("hashed again")

    monkeypatch.setattr(_hash_cache, "sha256_of", fail)
    assert cached_sha256(weights, tmp_path / "cache") == first


def test_rewrite_keeping_mtime_is_hashed_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_hash_cache, "RECENT_S", 0.0)
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"weights v1")
    cached_sha256(weights, tmp_path / "cache")
    time.sleep(0.05)  # past one kernel tick, so the rewrite gets a new change time
    before = weights.stat()
    weights.write_bytes(b"weights v2")
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert cached_sha256(weights, tmp_path / "cache") == hashlib.sha256(b"weights v2").hexdigest()


def test_unwritable_cache_still_returns_hash(tmp_path: Path) -> None:
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"weights")
    blocker = tmp_path / "cache"
    blocker.write_text("a file, not a folder")
    assert cached_sha256(weights, blocker) == hashlib.sha256(b"weights").hexdigest()


def test_recently_changed_file_is_not_remembered(tmp_path: Path) -> None:
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"weights")
    cached_sha256(weights, tmp_path / "cache")
    assert not (tmp_path / "cache" / _hash_cache.HASHES_FILE).exists()
