"""The catalog entry: what redtier knows about one model before loading it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ModelFormat(StrEnum):
    """Storage format of a model's weights."""

    HF = "hf"
    """A Hugging Face folder (config.json plus safetensors or pickle weights)."""
    GGUF = "gguf"
    """A single GGUF file (llama.cpp format), dequantized on load."""


class SourceKind(StrEnum):
    """Origin of a model's weights."""

    HUB = "hub"
    """A Hugging Face Hub id such as ``openai-community/gpt2``."""
    PATH = "path"
    """A local folder or GGUF file."""
    PACKAGE = "package"
    """A file inside an installed Python package, located without importing it."""


class ModelEntry(BaseModel):
    """One model in the catalog.

    The architecture fields (``n_layers``, ``n_kv_heads``, ``head_dim``) are
    optional; when present, memory estimates include the KV cache.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    family: str
    params: int = Field(gt=0)
    """Parameter count."""
    format: ModelFormat
    source_kind: SourceKind
    source: str
    """Hub id, filesystem path, or ``<package>/<file inside it>``."""
    context_length: int = Field(gt=0)
    chat: bool
    """Whether the model is instruction-tuned and takes a chat template."""
    license: str | None = None
    download_bytes: int | None = Field(default=None, gt=0)
    """Size of the weights to fetch, as published by the source."""
    quantization: str | None = None
    """Quantization of the stored weights, such as ``Q4_1`` for a GGUF file."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) to pin."""
    trust_remote_code: bool = False
    n_layers: int | None = Field(default=None, gt=0)
    n_kv_heads: int | None = Field(default=None, gt=0)
    head_dim: int | None = Field(default=None, gt=0)
    description: str = ""

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, source: str) -> str:
        if not source.strip():
            raise ValueError("source is empty: give a Hub id, a local path or a GGUF file")
        return source
