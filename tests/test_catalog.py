from __future__ import annotations

import json
from pathlib import Path

import pytest

from redtier.catalog import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    ModelFormat,
    Precision,
    SourceKind,
    estimate_memory,
    load_catalog,
    weight_bytes,
)
from redtier.errors import ConfigError, UnknownNameError

EXPECTED_SIZES = {
    "distilgpt2": 82e6,
    "gpt2": 124e6,
    "smollm-135m": 135e6,
    "smollm2-135m-instruct": 135e6,
    "llama-3.2-1b": 1.24e9,
    "phi-3.5-mini": 3.8e9,
    "mistral-7b": 7.25e9,
}


def test_builtin_catalog_covers_size_range() -> None:
    names = [entry.name for entry in BUILTIN_MODELS]
    assert names == list(EXPECTED_SIZES)
    for entry in BUILTIN_MODELS:
        assert entry.params == pytest.approx(EXPECTED_SIZES[entry.name], rel=0.02), entry.name
        assert entry.context_length >= 1024
        assert entry.license
        assert entry.download_bytes


def test_default_model_is_bundled_gguf() -> None:
    entry = load_catalog().get(DEFAULT_MODEL)
    assert entry.format is ModelFormat.GGUF
    assert entry.source_kind is SourceKind.PACKAGE
    assert entry.chat is True


def test_memory_orders_by_precision() -> None:
    entry = load_catalog().get("mistral-7b")
    assert weight_bytes(entry, Precision.FP32) == entry.params * 4
    fp32 = estimate_memory(entry, Precision.FP32)
    bf16 = estimate_memory(entry, Precision.BF16)
    int4 = estimate_memory(entry, Precision.INT4)
    assert fp32 > bf16 > int4
    assert fp32 > 28 * 1024**3


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(UnknownNameError) as caught:
        load_catalog().get("gtp2")
    assert "gpt2" in caught.value.suggestions
    assert "redtier models" in str(caught.value)


def test_user_catalog_adds_gguf_and_hub_entries(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    _write_tiny_gguf(gguf)
    catalog_file = tmp_path / "models.yaml"
    catalog_file.write_text(
        "models:\n"
        "  - name: tiny-gguf\n"
        "    source: tiny.gguf\n"
        "    chat: true\n"
        "  - name: qwen-small\n"
        "    source: hub:Qwen/Qwen2.5-0.5B-Instruct\n"
        "    params: 494032768\n"
        "    context_length: 32768\n"
        "    chat: true\n"
    )
    catalog = load_catalog(catalog_file)
    tiny = catalog.get("tiny-gguf")
    assert tiny.format is ModelFormat.GGUF
    assert tiny.source == str(gguf)
    assert tiny.params == 8 * 4
    hub = catalog.get("qwen-small")
    assert hub.source_kind is SourceKind.HUB
    assert hub.source == "Qwen/Qwen2.5-0.5B-Instruct"
    assert "gpt2" in catalog.names()


def test_user_catalog_reads_local_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": 512}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [3, 5], "data_offsets": [0, 60]}}).encode()
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(60))
    catalog_file = tmp_path / "models.yaml"
    catalog_file.write_text(f"models:\n  - name: local\n    source: {folder}\n")
    entry = load_catalog(catalog_file).get("local")
    assert entry.params == 15
    assert entry.context_length == 512
    assert entry.family == "gpt2"
    assert entry.chat is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: 3\n", "top-level `models:` list"),
        ("models:\n  - name: x\n", "`source` is missing"),
        ("models:\n  - name: x\n    source: hub:org/x\n", "needs `params` and `context_length`"),
        ("models:\n  - name: x\n    source: /nonexistent/model\n", "does not exist"),
        ("models: [\n", "not valid YAML"),
        (
            "models:\n  - name: x\n    source: hub:org/x\n    params: -1\n    context_length: 5\n",
            "params",
        ),
    ],
)
def test_user_catalog_rejects_bad_entries(tmp_path: Path, text: str, message: str) -> None:
    catalog_file = tmp_path / "models.yaml"
    catalog_file.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_catalog(catalog_file)


def _write_tiny_gguf(path: Path) -> None:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
