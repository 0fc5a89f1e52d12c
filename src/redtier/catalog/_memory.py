"""Memory estimates for loading and running a model.

The estimate is weights + KV cache + a fixed runtime overhead. The weight
size per parameter is exact for fp32/bf16/fp16/int8; for 4-bit it is
4.5 bits, the average of common 4-bit formats once their per-block scales are
counted. The runtime overhead (Python, torch, tokenizer) was measured at about
400 MB for the bundled model on CPU; it is an estimate for other models.
"""

from __future__ import annotations

from enum import StrEnum

from redtier.catalog._entry import ModelEntry

RUNTIME_OVERHEAD_BYTES = 400 * 1024**2
ACTIVATION_FRACTION = 0.10
"""Share of the weight size added for activations and temporary buffers."""


class Precision(StrEnum):
    """Numeric format of the weights in memory."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    INT8 = "int8"
    INT4 = "4bit"


BYTES_PER_PARAM: dict[Precision, float] = {
    Precision.FP32: 4.0,
    Precision.BF16: 2.0,
    Precision.FP16: 2.0,
    Precision.INT8: 1.0,
    Precision.INT4: 4.5 / 8,
}


def weight_bytes(entry: ModelEntry, precision: Precision) -> int:
    """Return the size of the model's weights at ``precision``."""
    return int(entry.params * BYTES_PER_PARAM[precision])


def kv_cache_bytes(entry: ModelEntry, tokens: int, batch_size: int, precision: Precision) -> int:
    """Return the KV cache size for ``batch_size`` sequences of ``tokens`` tokens.

    Returns 0 when the entry lacks the architecture fields. The cache is kept
    in fp32 for fp32 weights and in 16 bits otherwise.
    """
    if entry.n_layers is None or entry.n_kv_heads is None or entry.head_dim is None:
        return 0
    element = 4 if precision is Precision.FP32 else 2
    per_token = 2 * entry.n_layers * entry.n_kv_heads * entry.head_dim * element
    return per_token * tokens * batch_size


def estimate_memory(
    entry: ModelEntry,
    precision: Precision,
    *,
    tokens: int = 1024,
    batch_size: int = 1,
) -> int:
    """Estimate the peak resident memory, in bytes, of generating with the model."""
    weights = weight_bytes(entry, precision)
    activations = int(weights * ACTIVATION_FRACTION)
    kv = kv_cache_bytes(entry, tokens, batch_size, precision)
    return weights + activations + kv + RUNTIME_OVERHEAD_BYTES


def format_bytes(size: int | float) -> str:
    """Format a byte count with a binary unit, e.g. ``1.5 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
