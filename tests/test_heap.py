"""Freed heap memory goes back to the system between scan batches."""

from __future__ import annotations

import platform

import psutil
import pytest

from redtier.scan._heap import release_free_heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_free_heap_returns_fragmented_pages() -> None:
    me = psutil.Process()
    # 100 KB blocks stay under glibc's mmap threshold, so they live in the heap. Keeping every
    # tenth block pins the heap's top, so freeing the rest leaves free pages the heap keeps.
    blocks = [b"x" * 100_000 for _ in range(3000)]
    pinned = blocks[::10]
    del blocks
    before = me.memory_info().rss
    assert release_free_heap()
    after = me.memory_info().rss
    assert before - after > 100 * 1024**2, (before, after)
    assert len(pinned) == 300
