"""The optional llama.cpp runtime. Tests that need llama-cpp-python skip where it is not installed."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from redtier.backends import ChatRequest, GenerationConfig, Runtime, TransformersBackend, load_model
from redtier.catalog import DEFAULT_MODEL, Precision, load_catalog
from redtier.errors import ConfigError
from redtier.settings import Settings

INSTALLED = importlib.util.find_spec("llama_cpp") is not None
REQUESTS = [
    ChatRequest(prompt="What is the capital of France?"),
    ChatRequest(prompt="Name a colour.", system_prompt="Answer in one word."),
    ChatRequest(prompt="Tell me a long story about a dragon."),
]


@pytest.fixture(scope="module")
def llamacpp_model(model_cache: Path) -> Iterator[object]:
    pytest.importorskip("llama_cpp")
    backend = load_model(
        load_catalog().get(DEFAULT_MODEL),
        Settings(db_url="sqlite://", cache_dir=model_cache),
        Runtime.LLAMACPP,
    )
    yield backend
    backend.close()


@pytest.mark.skipif(INSTALLED, reason="llama-cpp-python is installed")
def test_missing_package_names_the_extra(model_cache: Path) -> None:
    settings = Settings(db_url="sqlite://", cache_dir=model_cache)
    with pytest.raises(ConfigError) as caught:
        load_model(load_catalog().get(DEFAULT_MODEL), settings, Runtime.LLAMACPP)
    assert "pip install 'redtier[llamacpp]'" in str(caught.value)


def test_precision_other_than_stored_is_rejected(model_cache: Path) -> None:
    settings = Settings(db_url="sqlite://", cache_dir=model_cache)
    with pytest.raises(ConfigError, match="--precision bf16"):
        load_model(
            load_catalog().get(DEFAULT_MODEL), settings, Runtime.LLAMACPP, precision=Precision.BF16
        )


def test_chat_template_matches_transformers(
    llamacpp_model, bundled_model: TransformersBackend
) -> None:
    for request in REQUESTS:
        assert llamacpp_model.format_prompt(request) == bundled_model.format_prompt(request)


def test_greedy_replies_respect_the_budget(llamacpp_model) -> None:
    config = GenerationConfig(max_new_tokens=16)
    started: list[int] = []
    results = dict(llamacpp_model.generate_stream(REQUESTS, config, on_start=started.extend))
    assert sorted(results) == [0, 1, 2]
    assert sorted(started) == [0, 1, 2]
    assert all(g.error is None and g.text.strip() for g in results.values())
    assert all(1 <= g.tokens_out <= 16 for g in results.values())
    assert "Paris" in results[0].text
    again = llamacpp_model.generate(REQUESTS, config)
    assert [g.text for g in again] == [results[i].text for i in range(3)]


def test_seeded_sampling_is_reproducible(llamacpp_model) -> None:
    config = GenerationConfig(max_new_tokens=16, temperature=1.0, seed=3)
    first = [g.text for g in llamacpp_model.generate(REQUESTS, config)]
    assert first == [g.text for g in llamacpp_model.generate(REQUESTS, config)]
    assert first != [
        g.text for g in llamacpp_model.generate(REQUESTS, config.model_copy(update={"seed": 4}))
    ]


def test_too_long_prompt_is_an_error(llamacpp_model) -> None:
    results = llamacpp_model.generate(
        [ChatRequest(prompt="word " * 9000), REQUESTS[0]], GenerationConfig(max_new_tokens=4)
    )
    assert results[0].error is not None
    assert "exceeds the 8192-token context" in results[0].error
    assert results[1].error is None
