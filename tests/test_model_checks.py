from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from redtier.backends._checks import check_model_files, pickle_files
from redtier.catalog import ModelEntry, ModelFormat, SourceKind
from redtier.errors import ModelLoadError


class RunsCommand:
    """Unpickling this calls os.system, the classic pickle payload."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def entry_for(folder: Path) -> ModelEntry:
    return ModelEntry(
        name="suspect",
        family="gpt2",
        params=1000,
        format=ModelFormat.HF,
        source_kind=SourceKind.PATH,
        source=str(folder),
        context_length=128,
        chat=False,
    )


def make_folder(tmp_path: Path, *files: str) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    for name in files:
        if name.endswith(".safetensors"):
            (folder / name).write_bytes(b"\x00" * 16)
        else:
            (folder / name).write_bytes(pickle.dumps(RunsCommand()))
    return folder


def test_pickle_only_model_is_refused(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as caught:
        check_model_files(entry_for(folder), folder)
    message = str(caught.value)
    assert "pytorch_model.bin" in message
    assert "system" in message
    assert "safetensors" in message


def test_pickle_allowed_when_asked(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, "pytorch_model.bin")
    check_model_files(entry_for(folder), folder, allow_pickle=True)


def test_safetensors_next_to_pickle_passes(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, "pytorch_model.bin", "model.safetensors")
    check_model_files(entry_for(folder), folder)
    assert [p.name for p in pickle_files(folder)] == ["pytorch_model.bin"]


def test_gguf_file_is_not_pickle(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    assert pickle_files(gguf) == []
