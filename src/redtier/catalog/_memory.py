"""Memory estimates for loading and running a model.

The estimate is the larger of two peaks:

- running: runtime overhead + weights + activations + KV cache;
- loading (CPU only): runtime overhead + the stored weights + the weights at
  the target precision, because transformers reads the whole stored checkpoint
  before casting it when the two precisions differ.

The weight size per parameter is exact for fp32/bf16/fp16/int8; for 4-bit it
is 4.5 bits, the average of common 4-bit formats once their per-block scales
are counted. The CPU runtime overhead (Python, torch, transformers, the
tokenizer) was measured at about 400 MiB for the bundled model with
``python -m redtier.tiers._benchmark`` on a 2-core x86 machine with
torch 2.13 and transformers 5.25. The GPU overhead (CUDA context and library
workspaces) is an estimate that has not been measured.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from redtier.catalog._entry import ModelEntry, ModelFormat

RUNTIME_OVERHEAD_BYTES = 400 * 1024**2
"""Resident memory of the CPU runtime before any weights load."""
GPU_RUNTIME_OVERHEAD_BYTES = 512 * 1024**2
"""GPU memory taken by the CUDA context and library workspaces (an estimate)."""
ACTIVATION_FRACTION = 0.10
"""Share of the weight size added for activations and temporary buffers."""


class Precision(StrEnum):
    """Numeric format of the weights in memory."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    INT8 = "int8"
    INT4 = "4bit"


class Device(StrEnum):
    """The memory that contains the weights while the model generates."""

    CPU = "cpu"
    """Host memory; the estimate is a peak resident set size."""
    GPU = "gpu"
    """Accelerator memory; host memory is not estimated."""


BYTES_PER_PARAM: dict[Precision, float] = {
    Precision.FP32: 4.0,
    Precision.BF16: 2.0,
    Precision.FP16: 2.0,
    Precision.INT8: 1.0,
    Precision.INT4: 4.5 / 8,
}

QUANTIZED: frozenset[Precision] = frozenset({Precision.INT8, Precision.INT4})
"""Precisions below 16 bits, which routing uses only when quantization is allowed."""


class MemoryEstimate(BaseModel):
    """The parts of a memory estimate, in bytes."""

    model_config = ConfigDict(frozen=True)

    device: Device
    precision: Precision
    weights: int
    activations: int
    kv_cache: int
    runtime: int
    """Memory taken before any weights load: interpreter and libraries, or the CUDA context."""
    load_peak: int
    """Peak while loading with a cast from the stored precision; 0 when loading needs no cast."""
    total: int
    """The larger of the running peak and ``load_peak``."""


def weight_bytes(entry: ModelEntry, precision: Precision) -> int:
    """Return the size of the model's weights at ``precision``."""
    return int(entry.params * BYTES_PER_PARAM[precision])


def kv_cache_bytes(entry: ModelEntry, tokens: int, batch_size: int, precision: Precision) -> int:
    """Return the KV cache size for ``batch_size`` sequences of ``tokens`` tokens.

    Returns 0 when the entry lacks the architecture fields. The cache is kept
    in fp32 for fp32 weights and in 16 bits otherwise, quantized weights
    included. ``tokens`` is capped at the model's context length.
    """
    if entry.n_layers is None or entry.n_kv_heads is None or entry.head_dim is None:
        return 0
    element = 4 if precision is Precision.FP32 else 2
    per_token = 2 * entry.n_layers * entry.n_kv_heads * entry.head_dim * element
    return per_token * min(tokens, entry.context_length) * batch_size


def stored_precision(entry: ModelEntry) -> Precision | None:
    """Return the precision of the weights as loaded from disk, or None when unknown.

    GGUF files are converted to fp32 safetensors before loading. For other
    formats the published download size per parameter distinguishes fp32 from 16-bit.
    """
    if entry.format is ModelFormat.GGUF:
        return Precision.FP32
    if entry.download_bytes is None:
        return None
    per_param = entry.download_bytes / entry.params
    if per_param >= 3.0:
        return Precision.FP32
    if per_param >= 1.5:
        return Precision.BF16
    return None


def memory_breakdown(
    entry: ModelEntry,
    precision: Precision,
    *,
    tokens: int = 1024,
    batch_size: int = 1,
    device: Device = Device.CPU,
) -> MemoryEstimate:
    """Estimate the peak memory of loading the model and generating a batch, by part."""
    weights = weight_bytes(entry, precision)
    activations = int(weights * ACTIVATION_FRACTION)
    kv = kv_cache_bytes(entry, tokens, batch_size, precision)
    runtime = RUNTIME_OVERHEAD_BYTES if device is Device.CPU else GPU_RUNTIME_OVERHEAD_BYTES
    load_peak = 0
    stored = stored_precision(entry)
    casts = stored is not None and BYTES_PER_PARAM[stored] != BYTES_PER_PARAM[precision]
    if device is Device.CPU and casts and precision not in QUANTIZED:
        assert stored is not None
        load_peak = runtime + weight_bytes(entry, stored) + weights
    running = runtime + weights + activations + kv
    return MemoryEstimate(
        device=device,
        precision=precision,
        weights=weights,
        activations=activations,
        kv_cache=kv,
        runtime=runtime,
        load_peak=load_peak,
        total=max(running, load_peak),
    )


def estimate_memory(
    entry: ModelEntry,
    precision: Precision,
    *,
    tokens: int = 1024,
    batch_size: int = 1,
    device: Device = Device.CPU,
) -> int:
    """Estimate the peak memory, in bytes, of loading the model and generating with it."""
    return memory_breakdown(
        entry, precision, tokens=tokens, batch_size=batch_size, device=device
    ).total


def format_bytes(size: int | float) -> str:
    """Format a byte count with a binary unit, e.g. ``1.5 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
