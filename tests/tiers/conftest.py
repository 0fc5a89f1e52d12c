"""Fixtures for tier tests: a 70B catalog entry and a tier file with a large CPU tier."""

from __future__ import annotations

from pathlib import Path

import pytest

from redtier.catalog import ModelEntry, ModelFormat, SourceKind

SEVENTY_B_YAML = """\
models:
  - name: llama-3.1-70b
    source: hub:meta-llama/Llama-3.1-70B-Instruct
    params: 70553706496
    context_length: 131072
    chat: true
    n_layers: 80
    n_kv_heads: 8
    head_dim: 128
    download_bytes: 141107412992
"""

CPU_LARGE_YAML = """\
tiers:
  - name: cpu_large
    accelerator: none
    memory: 28 GiB            # the instance has 32 GiB
    attempt_timeout_s: 60
    instance_type: c6i.4xlarge
    price_usd_per_hour: {on_demand: 0.68, spot: 0.27}
    throughput: {tokens_per_s: 80, reference_params: 135M, max_tokens_per_s: 200}
"""


@pytest.fixture
def seventy_b() -> ModelEntry:
    """Llama 3.1 70B as published: 70.6B parameters, 80 layers, 8 KV heads of 128."""
    return ModelEntry(
        name="llama-3.1-70b",
        family="llama",
        params=70_553_706_496,
        format=ModelFormat.HF,
        source_kind=SourceKind.HUB,
        source="meta-llama/Llama-3.1-70B-Instruct",
        context_length=131_072,
        chat=True,
        download_bytes=141_107_412_992,
        n_layers=80,
        n_kv_heads=8,
        head_dim=128,
    )


@pytest.fixture
def catalog_with_70b(tmp_path: Path) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(SEVENTY_B_YAML, encoding="utf-8")
    return path


@pytest.fixture
def cpu_large_tiers(tmp_path: Path) -> Path:
    path = tmp_path / "tiers.yaml"
    path.write_text(CPU_LARGE_YAML, encoding="utf-8")
    return path
