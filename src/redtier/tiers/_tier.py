"""The tier model: a class of hardware that a scan can run on, with its prices and speed."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from redtier.catalog import QUANTIZED, Device, ModelEntry, Precision, format_bytes

CPU_PRECISIONS: tuple[Precision, ...] = (Precision.FP32, Precision.BF16, Precision.FP16)
"""Precisions the transformers backend runs on a CPU."""
DEFAULT_CPU_PRECISIONS: tuple[Precision, ...] = (Precision.FP32, Precision.BF16)
DEFAULT_GPU_PRECISIONS: tuple[Precision, ...] = (
    Precision.BF16,
    Precision.FP16,
    Precision.INT8,
    Precision.INT4,
)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_size(value: Any) -> int:
    """Return a byte count from an integer or a string such as ``2 GiB`` or ``24 GB``.

    Raises ``ValueError`` for any bad value, even of the wrong type, because
    pydantic reports a ``ValueError`` as a validation error naming the field.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '2 GiB', got {value!r}")  # noqa: TRY004
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            unit = (match.group(2) or "B").lower()
            return int(float(match.group(1)) * _UNITS[unit])
    raise ValueError(
        f"expected a size such as '2 GiB', '15360 MiB' or a byte count, got {value!r} "
        "(units: B, KB, MB, GB, TB in powers of 1000; KiB, MiB, GiB, TiB in powers of 1024)"
    )


class PriceKind(StrEnum):
    """The hourly price that cost estimates use."""

    ON_DEMAND = "on_demand"
    SPOT = "spot"


class Accelerator(BaseModel):
    """The GPUs of a tier."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu: str = Field(min_length=1)
    """GPU model, e.g. ``NVIDIA T4``."""
    count: int = Field(default=1, ge=1)
    memory_bytes: int = Field(gt=0, alias="memory")
    """Memory of one GPU; a model may be split across ``count`` GPUs."""

    @field_validator("memory_bytes", mode="before")
    @classmethod
    def _parse_memory(cls, value: Any) -> int:
        return parse_size(value)


class Prices(BaseModel):
    """Hourly prices in US dollars."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    on_demand: float = Field(ge=0)
    spot: float | None = Field(default=None, ge=0)
    """Typical spot price; spot prices change over time, so this is an estimate."""

    def hourly(self, kind: PriceKind) -> float:
        """Return the price of ``kind``, falling back to on demand when no spot price is set."""
        if kind is PriceKind.SPOT and self.spot is not None:
            return self.spot
        return self.on_demand


REFERENCE_BATCH = 32
"""Rows per batch at which tier speeds are given: the scan's default batch size."""
BATCH_EXPONENT = 0.6
"""Exponent of the slow-down with fewer rows per batch: ``(rows / REFERENCE_BATCH) ** BATCH_EXPONENT``.
Fitted to SmolLM2-135M on 2 vCPUs (15.3 tokens/s one prompt at a time, 121 at 32 rows,
106 at 64; benchmarks/README.md), so below 32 rows it is an estimate for other hardware."""


class Throughput(BaseModel):
    """Generated tokens per second on a tier, for all sequences of a batch together.

    Speeds are given at ``REFERENCE_BATCH`` rows per batch. For a model without a
    ``measured`` value the speed is scaled from the reference size:
    ``tokens_per_s * reference_params / params``, capped at ``max_tokens_per_s``.
    Decoding time grows roughly with the weight size, and small models are held
    back by per-step overhead instead, hence the cap. Fewer rows per batch slow
    it down (see ``BATCH_EXPONENT``); more rows than the reference gain nothing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens_per_s: float = Field(gt=0)
    reference_params: int = Field(gt=0)
    max_tokens_per_s: float | None = Field(default=None, gt=0)
    measured: dict[str, float] = Field(default_factory=dict)
    """Measured tokens per second by model name, used instead of the scaling rule."""

    @field_validator("reference_params", mode="before")
    @classmethod
    def _parse_params(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _parse_count(value)
        return value

    @field_validator("measured")
    @classmethod
    def _positive(cls, measured: dict[str, float]) -> dict[str, float]:
        for name, speed in measured.items():
            if speed <= 0:
                raise ValueError(f"measured speed of {name!r} must be positive, got {speed}")
        return measured

    def tokens_per_s_for(self, entry: ModelEntry, rows_per_batch: int = REFERENCE_BATCH) -> float:
        """Return the estimated generation speed of ``entry`` on this tier at ``rows_per_batch``."""
        batching = (
            min(max(rows_per_batch, 1), REFERENCE_BATCH) / REFERENCE_BATCH
        ) ** BATCH_EXPONENT
        if entry.name in self.measured:
            return self.measured[entry.name] * batching
        speed = self.tokens_per_s * self.reference_params / entry.params
        if self.max_tokens_per_s is not None:
            speed = min(speed, self.max_tokens_per_s)
        return speed * batching

    def source_for(self, entry: ModelEntry) -> str:
        """Return where the speed of ``entry`` comes from, for plan output."""
        return "measured" if entry.name in self.measured else "scaled from the tier's reference"


class Tier(BaseModel):
    """One class of hardware: memory, accelerator, time limit, prices and speed."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    accelerator: Accelerator | None = None
    """``None`` (written ``none`` in the file) for a CPU-only tier."""
    memory_bytes: int = Field(gt=0, alias="memory")
    """Host memory a job may use; on CPU tiers the model must fit in it."""
    attempt_timeout_s: float = Field(gt=0)
    """Wall time allowed per attempt; a model estimated to be slower does not fit."""
    instance_type: str = Field(min_length=1)
    price_usd_per_hour: Prices
    throughput: Throughput
    start_s: float = Field(default=3.0, ge=0, le=3600)
    """Seconds to start the sandboxed model worker and import its libraries."""
    load_gb_per_s: float = Field(default=1.0, gt=0)
    """Gigabytes (10⁹ bytes) of weights the tier loads onto its device per second."""
    available: bool = True
    """False hides the tier from automatic routing (e.g. no workers run on it); ``--tier`` still selects it."""
    precisions: tuple[Precision, ...] = Field(min_length=1)
    """Precisions the tier's runtime supports, in order of preference.

    Default: fp32 then bf16 on a CPU tier; bf16, fp16, int8, 4-bit on a GPU tier.
    """
    description: str = ""

    @field_validator("accelerator", mode="before")
    @classmethod
    def _none_means_cpu(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"none", "cpu"}:
            return None
        return value

    @field_validator("memory_bytes", mode="before")
    @classmethod
    def _parse_memory(cls, value: Any) -> int:
        return parse_size(value)

    @model_validator(mode="before")
    @classmethod
    def _default_precisions(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("precisions"):
            on_cpu = data.get("accelerator") is None or (
                isinstance(data.get("accelerator"), str)
                and data["accelerator"].strip().lower() in {"none", "cpu"}
            )
            data = {
                **data,
                "precisions": DEFAULT_CPU_PRECISIONS if on_cpu else DEFAULT_GPU_PRECISIONS,
            }
        return data

    @model_validator(mode="after")
    def _check_precisions(self) -> Tier:
        if self.accelerator is None:
            unsupported = [p.value for p in self.precisions if p not in CPU_PRECISIONS]
            if unsupported:
                raise ValueError(
                    f"precisions: {', '.join(unsupported)} need a GPU (bitsandbytes); "
                    "a CPU tier runs fp32, bf16 or fp16"
                )
        if len(set(self.precisions)) != len(self.precisions):
            raise ValueError("precisions: each precision may appear once")
        return self

    @property
    def device(self) -> Device:
        """Where models on this tier keep their weights."""
        return Device.CPU if self.accelerator is None else Device.GPU

    def load_seconds(self, weight_bytes: int) -> float:
        """Return the estimated time to start the worker and load ``weight_bytes`` of weights."""
        return self.start_s + weight_bytes / (self.load_gb_per_s * 1e9)

    @property
    def model_memory_bytes(self) -> int:
        """Memory a model must fit in: all GPUs together, or host memory on a CPU tier."""
        if self.accelerator is None:
            return self.memory_bytes
        return self.accelerator.memory_bytes * self.accelerator.count

    def hardware(self) -> str:
        """Describe the hardware in a few words, e.g. ``1 × NVIDIA T4, 15.0 GiB``."""
        if self.accelerator is None:
            return f"CPU, {format_bytes(self.memory_bytes)}"
        gpu = self.accelerator
        return f"{gpu.count} × {gpu.gpu}, {format_bytes(gpu.memory_bytes)}"

    def allows(self, precision: Precision, allow_quantization: bool) -> bool:
        """Return whether routing may pick ``precision`` on this tier."""
        if precision not in self.precisions:
            return False
        return allow_quantization or precision not in QUANTIZED


class RoutingPolicy(BaseModel):
    """Rules routing follows unless a command-line flag overrides them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow_quantization: bool = False
    """Whether routing may pick int8 or 4-bit weights to fit a cheaper tier."""
    price: PriceKind = PriceKind.ON_DEMAND


class TierSet(BaseModel):
    """The tiers a plan or worker chooses from, and the routing policy."""

    model_config = ConfigDict(frozen=True)

    tiers: tuple[Tier, ...]
    policy: RoutingPolicy = RoutingPolicy()
    sources: tuple[str, ...] = ()
    """Origins of the tiers: ``built-in`` and any tier files."""

    def get(self, name: str) -> Tier:
        """Return the tier called ``name`` or raise ``UnknownNameError``."""
        from redtier.errors import UnknownNameError

        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise UnknownNameError(
            "tier",
            name,
            self.names(),
            hint="Define it in a tier file (--tiers FILE or REDTIER_TIERS).",
        )

    def names(self) -> list[str]:
        """Return the tier names in file order."""
        return [tier.name for tier in self.tiers]


def _parse_count(text: str) -> int:
    """Parse ``135M``, ``7.2B`` or ``1_000_000`` as a parameter count."""
    cleaned = text.strip().replace("_", "").replace(",", "")
    scale = {"k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}.get(cleaned[-1:].lower())
    if scale is not None:
        cleaned = cleaned[:-1]
    try:
        return int(float(cleaned) * (scale or 1))
    except ValueError:
        raise ValueError(f"expected a parameter count such as 135M or 7.2B, got {text!r}") from None
