"""The sandboxed model worker forwards each reply as it ends, and recovers from a caller that stops early."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from redtier.backends import (
    ChatRequest,
    GenerationConfig,
    SandboxedBackend,
    TransformersBackend,
    WorkerOptions,
)
from redtier.backends._sandboxed import _WindowProgress
from redtier.catalog import DEFAULT_MODEL, load_catalog
from redtier.errors import ModelLoadError
from redtier.sandbox import get_sandbox
from redtier.settings import Settings

REQUESTS = [
    ChatRequest(prompt="Tell me a long story about a dragon."),
    ChatRequest(prompt="Is the sky blue on a clear summer afternoon? Answer yes or no."),
    ChatRequest(prompt="What is the capital of France?"),
    ChatRequest(prompt="Name a colour.", system_prompt="Answer in one word."),
]
CONFIG = GenerationConfig(max_new_tokens=32, batch_size=2)


@pytest.fixture(scope="module")
def sandboxed_model(model_cache: Path) -> Iterator[SandboxedBackend]:
    settings = Settings(db_url="sqlite://", cache_dir=model_cache)
    options = WorkerOptions(load_timeout_s=600, batch_timeout_s=600)
    backend = SandboxedBackend.start(
        load_catalog().get(DEFAULT_MODEL), settings, get_sandbox("auto"), options
    )
    yield backend
    backend.close()


@pytest.mark.model
def test_worker_replies_in_finishing_order(
    sandboxed_model: SandboxedBackend, bundled_model: TransformersBackend
) -> None:
    order = list(sandboxed_model.generate_iter(REQUESTS[:2], CONFIG))
    in_process = bundled_model.generate(REQUESTS[:2], CONFIG)

    assert [index for index, _ in order] == [1, 0]
    assert [g.text for _, g in sorted(order, key=lambda item: item[0])] == [
        g.text for g in in_process
    ]


@pytest.mark.model
def test_caller_stopping_early_leaves_no_stale_replies(
    sandboxed_model: SandboxedBackend, bundled_model: TransformersBackend
) -> None:
    stream = sandboxed_model.generate_iter(REQUESTS, CONFIG)
    next(stream)
    stream.close()

    again = sandboxed_model.generate(REQUESTS, CONFIG)
    assert [g.text for g in again] == [g.text for g in bundled_model.generate(REQUESTS, CONFIG)]
    assert sandboxed_model.restarts == 0


def test_failed_window_fails_started_and_resends_the_rest() -> None:
    progress = _WindowProgress()
    progress.started.update({0, 1, 2})
    progress.replied.add(0)
    assert progress.split(5, retry_all=True) == ([1, 2], [3, 4])
    assert progress.split(5, retry_all=False) == ([1, 2], [3, 4])


def test_failed_window_with_nothing_started() -> None:
    progress = _WindowProgress()
    assert progress.split(3, retry_all=True) == ([], [0, 1, 2])
    assert progress.split(3, retry_all=False) == ([0, 1, 2], [])


@pytest.mark.model
def test_close_under_a_running_generation_ends_it_quietly(
    model_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C closes the backend while generation still runs: no failure, no retry, no new worker."""
    settings = Settings(db_url="sqlite://", cache_dir=model_cache)
    backend = SandboxedBackend.start(
        load_catalog().get(DEFAULT_MODEL),
        settings,
        get_sandbox("auto"),
        WorkerOptions(load_timeout_s=600, batch_timeout_s=600),
    )
    stream = backend.generate_iter(REQUESTS, CONFIG)
    next(stream)
    backend.close()
    with caplog.at_level("WARNING", logger="redtier.backends._sandboxed"):
        rest = list(stream)
    assert not any(generation.error for _, generation in rest)
    assert not caplog.records, [record.getMessage() for record in caplog.records]
    assert backend.restarts == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's sandbox runs as another user")
def test_cache_behind_closed_folder_names_the_fix(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    settings = Settings(db_url="sqlite://", cache_dir=closed / "cache")
    with pytest.raises(ModelLoadError) as caught:
        SandboxedBackend.start(load_catalog().get(DEFAULT_MODEL), settings, get_sandbox("auto"))
    message = str(caught.value)
    assert f"The model cache {closed / 'cache' / 'gguf'} is not writable" in message
    assert "REDTIER_CACHE_DIR" in message
