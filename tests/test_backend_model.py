"""The transformers backend on the real bundled SmolLM2-135M-Instruct."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from redtier.backends import ChatRequest, GenerationConfig, TransformersBackend, locate_weights
from redtier.backends import _gguf_cache
from redtier.catalog import DEFAULT_MODEL, ModelEntry, ModelFormat, Precision, SourceKind, load_catalog
from redtier.errors import InsufficientMemoryError, ModelLoadError
from redtier.backends import check_memory
from redtier.settings import Settings

pytestmark = pytest.mark.model

GREEDY = GenerationConfig(max_new_tokens=24)
REQUESTS = [
    ChatRequest(prompt="What is the capital of France?"),
    ChatRequest(prompt="Name a colour.", system_prompt="Answer in one word."),
    ChatRequest(prompt="Write one sentence about the sea, please, in a calm and gentle tone."),
]


def test_chat_template_frames_system_and_user(bundled_model: TransformersBackend) -> None:
    text = bundled_model.format_prompt(ChatRequest(prompt="hi", system_prompt="be brief"))
    assert text == (
        "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_batched_greedy_equals_one_at_a_time(bundled_model: TransformersBackend) -> None:
    batched = bundled_model.generate(REQUESTS, GREEDY)
    single = [bundled_model.generate([request], GREEDY)[0] for request in REQUESTS]
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(g.text.strip() for g in batched)
    assert all(0 < g.tokens_out <= 24 for g in batched)
    assert "Paris" in batched[0].text


def test_seeded_sampling_is_reproducible(bundled_model: TransformersBackend) -> None:
    config = GenerationConfig(max_new_tokens=20, temperature=1.0, seed=7)
    first = [g.text for g in bundled_model.generate(REQUESTS, config)]
    second = [g.text for g in bundled_model.generate(REQUESTS, config)]
    other = [g.text for g in bundled_model.generate(REQUESTS, config.model_copy(update={"seed": 8}))]
    assert first == second
    assert first != other


def test_prompt_longer_than_context_is_an_error(bundled_model: TransformersBackend) -> None:
    long_prompt = "word " * 9000
    results = bundled_model.generate(
        [ChatRequest(prompt=long_prompt), REQUESTS[0]], GenerationConfig(max_new_tokens=8)
    )
    assert results[0].error is not None
    assert "exceeds the 8192-token context" in results[0].error
    assert results[1].error is None
    assert results[1].text


def test_control_characters_and_thousand_token_prompt(bundled_model: TransformersBackend) -> None:
    prompt = "Summarise: " + "the cat sat on the mat. " * 300 + "\x07\x1b end"
    [result] = bundled_model.generate([ChatRequest(prompt=prompt)], GenerationConfig(max_new_tokens=8))
    assert result.error is None
    assert result.tokens_in > 1500


def test_converted_weights_are_reused(bundled_model: TransformersBackend, model_cache: Path, monkeypatch) -> None:
    def fail(*_args: object) -> None:
        raise AssertionError("the GGUF file was converted again")

    monkeypatch.setattr(_gguf_cache, "_convert", fail)
    settings = Settings(db_url="sqlite://", cache_dir=model_cache)
    again = TransformersBackend.load(load_catalog().get(DEFAULT_MODEL), settings)
    assert again.describe()["weights_sha256"] == bundled_model.describe()["weights_sha256"]
    assert again.generate([REQUESTS[0]], GREEDY)[0].text == bundled_model.generate([REQUESTS[0]], GREEDY)[0].text


def test_truncated_gguf_fails_clearly(tmp_path: Path) -> None:
    original = locate_weights(load_catalog().get(DEFAULT_MODEL))
    truncated = tmp_path / "truncated.gguf"
    with original.open("rb") as source, truncated.open("wb") as target:
        target.write(source.read(4_000_000))
    entry = load_catalog().get(DEFAULT_MODEL).model_copy(
        update={"name": "truncated", "source_kind": SourceKind.PATH, "source": str(truncated)}
    )
    settings = Settings(db_url="sqlite://", cache_dir=tmp_path / "cache")
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        TransformersBackend.load(entry, settings)
    assert not (tmp_path / "cache" / "gguf").exists() or not any(
        (p / _gguf_cache.COMPLETE_MARKER).exists() for p in (tmp_path / "cache" / "gguf").iterdir()
    )


def test_hub_model_offline_fails_fast(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    started = time.perf_counter()
    with pytest.raises(ModelLoadError) as caught:
        locate_weights(load_catalog().get("gpt2"))
    assert time.perf_counter() - started < 10
    message = str(caught.value)
    assert "HF_HUB_OFFLINE" in message
    assert "local folder" in message


def test_model_too_large_names_need_and_available() -> None:
    entry = load_catalog().get("mistral-7b")
    with pytest.raises(InsufficientMemoryError) as caught:
        check_memory(entry, Precision.FP32, available=16 * 1024**3)
    message = str(caught.value)
    assert "mistral-7b" in message
    assert "GiB" in message
    assert "16.0 GiB available" in message


def _tiny_gpt2_entry(tmp_path: Path) -> ModelEntry:
    """Return a catalog entry for a tiny base GPT-2 written under ``tmp_path``."""
    return ModelEntry(
        name="tiny-gpt2",
        family="gpt2",
        params=1,
        format=ModelFormat.HF,
        source_kind=SourceKind.PATH,
        source=str(_tiny_gpt2_folder(tmp_path / "tiny-gpt2")),
        context_length=128,
        chat=False,
    )


def test_base_model_uses_plain_continuation(tmp_path: Path) -> None:
    entry = _tiny_gpt2_entry(tmp_path)
    backend = TransformersBackend.load(entry, Settings(db_url="sqlite://", cache_dir=tmp_path / "c"))
    assert backend.format_prompt(ChatRequest(prompt="Once upon", system_prompt="Tale:")) == "Tale:\n\nOnce upon\n"
    [result] = backend.generate([ChatRequest(prompt="Once upon")], GenerationConfig(max_new_tokens=5))
    assert result.error is None
    assert 1 <= result.tokens_out <= 5


def test_load_hides_transformers_progress_bars(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from transformers.utils import logging as transformers_logging

    entry = _tiny_gpt2_entry(tmp_path)
    transformers_logging.enable_progress_bar()
    capfd.readouterr()
    TransformersBackend.load(entry, Settings(db_url="sqlite://", cache_dir=tmp_path / "c"))
    output = capfd.readouterr()
    assert "Loading weights" not in output.err
    assert "Loading weights" not in output.out
    assert transformers_logging.is_progress_bar_enabled(), "the bars are enabled again after loading"


def _tiny_gpt2_folder(folder: Path) -> Path:
    """Save a randomly initialised two-layer GPT-2 with the bundled model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)

    source = locate_weights(load_catalog().get(DEFAULT_MODEL))
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)
    return folder
