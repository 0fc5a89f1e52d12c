"""Route a model to a tier: the cheapest tier where it fits, at a precision the policy allows.

The rule, in order:

1. A tier fits a model at a precision when three conditions hold. The tier's
   runtime supports that precision. The memory estimate for the scan
   (weights, KV cache for the longest batch, activations, runtime) is within
   the tier's model memory. The estimated time per attempt is within the
   tier's attempt timeout.
2. Precisions are tried in the tier's order of preference. int8 and 4-bit are
   tried only when quantization is allowed (policy or ``--allow-quantization``)
   or when the user asks for that precision.
3. Among fitting tiers, the one with the lowest hourly price wins, then the
   lowest estimated cost, then the name. Estimated scan costs do not decide on
   their own because the throughput figures behind them are rough; the plan
   lists every alternative's estimated cost, so a faster tier that would cost
   less for the scan is visible.
4. Unavailable tiers (``available: false``, or GPU tiers under ``--cpu-only``)
   are skipped, so small models fall back to a CPU tier when no GPU is there.
5. When nothing fits, routing raises ``RoutingError`` naming the nearest tier
   and the memory a tier would need.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from redtier.catalog import (
    QUANTIZED,
    MemoryEstimate,
    ModelEntry,
    Precision,
    format_bytes,
    memory_breakdown,
)
from redtier.errors import ConfigError
from redtier.tiers._shape import ScanShape
from redtier.tiers._tier import PriceKind, Tier, TierSet


class RoutingError(ConfigError):
    """No tier can run the model, or the requested tier cannot."""


class TierFit(BaseModel):
    """Whether one tier can run the model, at which precision, and at what estimated cost."""

    model_config = ConfigDict(frozen=True)

    tier: str
    instance_type: str
    hardware: str
    gpu: bool
    available: bool
    fits: bool
    precision: Precision | None
    """The chosen precision when the tier fits, else the one closest to fitting."""
    memory: MemoryEstimate | None
    memory_limit_bytes: int
    seconds: float | None
    """Estimated wall time of the scan: starting the worker, loading the weights, generating."""
    load_seconds: float | None = None
    """The part of ``seconds`` spent starting the worker and loading the weights; a resumed
    scan pays it again."""
    seconds_per_attempt: float | None
    price_per_hour_usd: float
    cost_usd: float | None
    reason: str
    """One-sentence explanation of whether the tier fits."""
    fits_quantized: Precision | None = None
    """For a tier that does not fit: a quantized precision it would fit at, were quantization allowed."""


class RouteDecision(BaseModel):
    """The tier chosen for one model, why, and every tier considered."""

    model_config = ConfigDict(frozen=True)

    model: str
    params: int
    tier: str
    precision: Precision
    chosen: TierFit
    alternatives: tuple[TierFit, ...]
    reason: str
    price: PriceKind


def fit_tier(
    entry: ModelEntry,
    tier: Tier,
    shape: ScanShape,
    *,
    precision: Precision | None = None,
    allow_quantization: bool = False,
    price: PriceKind = PriceKind.ON_DEMAND,
) -> TierFit:
    """Check whether ``tier`` can run ``entry`` for a scan of ``shape``."""
    fields = _fit_fields(entry, tier, shape, price)
    candidates = _candidate_precisions(tier, precision, allow_quantization)
    if not candidates:
        requested = precision.value if precision else "an allowed precision"
        supported = ", ".join(p.value for p in tier.precisions)
        reason = f"does not run {requested} (runs {supported})"
        fields = _with_load(fields, tier, None)
        return TierFit(**fields, fits=False, precision=None, memory=None, reason=reason)

    estimates = [_estimate(entry, tier, shape, p) for p in candidates]
    fitting = next((e for e in estimates if e.total <= tier.model_memory_bytes), None)
    limit = format_bytes(tier.model_memory_bytes)

    if fitting is None:
        smallest = min(estimates, key=lambda e: e.total)
        reason = f"too small: needs {format_bytes(smallest.total)} at {smallest.precision.value}, has {limit}"
        quantized = None
        if not allow_quantization and precision is None:
            quantized = _quantized_fit(entry, tier, shape)
        if quantized is not None:
            reason += (
                f"; would fit at {quantized.precision.value} ({format_bytes(quantized.total)}) "
                f"with --allow-quantization or --precision {quantized.precision.value}"
            )
        return TierFit(
            **_with_load(fields, tier, smallest),
            fits=False,
            precision=smallest.precision,
            memory=smallest,
            reason=reason,
            fits_quantized=quantized.precision if quantized else None,
        )

    fields = _with_load(fields, tier, fitting)
    per_attempt = fields["seconds_per_attempt"]
    if per_attempt > tier.attempt_timeout_s:
        reason = (
            f"too slow: about {per_attempt:.0f} s per attempt, over the tier's "
            f"{tier.attempt_timeout_s:g} s attempt timeout"
        )
        return TierFit(
            **fields, fits=False, precision=fitting.precision, memory=fitting, reason=reason
        )

    reason = f"{fitting.precision.value} fits ({format_bytes(fitting.total)} of {limit})"
    if fitting is not estimates[0]:
        first = estimates[0]
        reason += f", {first.precision.value} would need {format_bytes(first.total)}"
    return TierFit(**fields, fits=True, precision=fitting.precision, memory=fitting, reason=reason)


def _fit_fields(
    entry: ModelEntry, tier: Tier, shape: ScanShape, price: PriceKind
) -> dict[str, Any]:
    """Return the fields of a ``TierFit`` that do not depend on the precision."""
    hourly = tier.price_usd_per_hour.hourly(price)
    speed = tier.throughput.tokens_per_s_for(entry, shape.rows_per_batch)
    seconds = shape.generated_tokens / speed
    return {
        "tier": tier.name,
        "instance_type": tier.instance_type,
        "hardware": tier.hardware(),
        "gpu": tier.accelerator is not None,
        "available": tier.available,
        "memory_limit_bytes": tier.model_memory_bytes,
        "price_per_hour_usd": hourly,
        "seconds": seconds,
        "seconds_per_attempt": shape.max_new_tokens / speed,
        "cost_usd": seconds / 3600 * hourly,
    }


def _with_load(
    fields: dict[str, Any], tier: Tier, estimate: MemoryEstimate | None
) -> dict[str, Any]:
    """Add the start and weight loading time of ``estimate``'s precision to ``fields``."""
    if estimate is None:
        return fields
    load = tier.load_seconds(estimate.weights)
    seconds = fields["seconds"] + load
    hourly = fields["price_per_hour_usd"]
    return {**fields, "seconds": seconds, "load_seconds": load, "cost_usd": seconds / 3600 * hourly}


def route(
    entry: ModelEntry,
    tiers: TierSet,
    shape: ScanShape,
    *,
    tier: str | None = None,
    precision: Precision | None = None,
    allow_quantization: bool | None = None,
    price: PriceKind | None = None,
    cpu_only: bool = False,
) -> RouteDecision:
    """Choose the tier for ``entry``; raise ``RoutingError`` when none (or not ``tier``) fits.

    ``allow_quantization`` and ``price`` default to the tier set's policy.
    ``cpu_only`` treats every GPU tier as unavailable.
    """
    allow = tiers.policy.allow_quantization if allow_quantization is None else allow_quantization
    kind = tiers.policy.price if price is None else price
    fits = []
    for candidate in tiers.tiers:
        fit = fit_tier(
            entry, candidate, shape, precision=precision, allow_quantization=allow, price=kind
        )
        if cpu_only and candidate.accelerator is not None:
            fit = fit.model_copy(update={"available": False})
        fits.append(fit)
    if tier is not None:
        tiers.get(tier)
        chosen = next(fit for fit in fits if fit.tier == tier)
        if not chosen.fits:
            raise RoutingError(_override_message(entry, chosen, fits))
        reason = f"chosen with --tier; {chosen.reason}"
    else:
        usable = [fit for fit in fits if fit.fits and fit.available]
        if not usable:
            raise RoutingError(_nothing_fits_message(entry, tiers, shape, fits, allow))
        chosen = min(
            usable, key=lambda fit: (fit.price_per_hour_usd, fit.cost_usd or 0.0, fit.tier)
        )
        reason = f"cheapest tier that fits, at {_price(chosen)}; {chosen.reason}"
        reason += _fallback_note(chosen, fits, cpu_only)
        reason += _quantized_cheaper_note(chosen, fits)
    assert chosen.precision is not None
    return RouteDecision(
        model=entry.name,
        params=entry.params,
        tier=chosen.tier,
        precision=chosen.precision,
        chosen=chosen,
        alternatives=tuple(fit for fit in fits if fit.tier != chosen.tier),
        reason=reason,
        price=kind,
    )


def _candidate_precisions(
    tier: Tier, precision: Precision | None, allow_quantization: bool
) -> list[Precision]:
    if precision is not None:
        return [precision] if precision in tier.precisions else []
    return [p for p in tier.precisions if tier.allows(p, allow_quantization)]


def _estimate(
    entry: ModelEntry, tier: Tier, shape: ScanShape, precision: Precision
) -> MemoryEstimate:
    return memory_breakdown(
        entry,
        precision,
        tokens=shape.sequence_tokens,
        batch_size=shape.rows_per_batch,
        device=tier.device,
    )


def _quantized_fit(entry: ModelEntry, tier: Tier, shape: ScanShape) -> MemoryEstimate | None:
    """Return the estimate at the first quantized precision of ``tier`` that fits, if any."""
    for candidate in tier.precisions:
        if candidate in QUANTIZED:
            estimate = _estimate(entry, tier, shape, candidate)
            if estimate.total <= tier.model_memory_bytes:
                return estimate
    return None


def _price(fit: TierFit) -> str:
    return f"${fit.price_per_hour_usd:.3f}/h"


def _fallback_note(chosen: TierFit, fits: list[TierFit], cpu_only: bool) -> str:
    """Say so when an unavailable GPU tier would have been chosen over this CPU tier."""
    unavailable_gpu = [fit for fit in fits if fit.fits and fit.gpu and not fit.available]
    if chosen.gpu or not unavailable_gpu:
        return ""
    cheapest = min(unavailable_gpu, key=lambda fit: fit.price_per_hour_usd)
    if cheapest.price_per_hour_usd >= chosen.price_per_hour_usd:
        return ""
    cause = "--cpu-only is set" if cpu_only else "no GPU tier is available"
    return f"; CPU fallback because {cause} (it would otherwise run on {cheapest.tier})"


def _quantized_cheaper_note(chosen: TierFit, fits: list[TierFit]) -> str:
    """Point out a cheaper tier that the model would fit with quantization."""
    cheaper = [
        fit
        for fit in fits
        if fit.fits_quantized is not None and fit.price_per_hour_usd < chosen.price_per_hour_usd
    ]
    if not cheaper:
        return ""
    best = min(cheaper, key=lambda fit: fit.price_per_hour_usd)
    assert best.fits_quantized is not None
    name = best.fits_quantized.value
    return (
        f"; {best.tier} ({_price(best)}) would fit at {name} "
        f"with --allow-quantization or --precision {name}"
    )


def _override_message(entry: ModelEntry, chosen: TierFit, fits: list[TierFit]) -> str:
    fitting = [fit.tier for fit in fits if fit.fits]
    message = f"Model {entry.name!r} cannot run on tier {chosen.tier!r}: {chosen.reason}."
    if fitting:
        message += f" Tiers that fit: {', '.join(fitting)}. Drop --tier to pick the cheapest."
    else:
        message += " No tier fits it; see `redtier plan --model " + entry.name + "`."
    return message


def _nothing_fits_message(
    entry: ModelEntry, tiers: TierSet, shape: ScanShape, fits: list[TierFit], allow: bool
) -> str:
    """Name the nearest tier, what the model needs even at 4-bit, and what would fit."""
    considered = [fit for fit in fits if fit.available] or fits
    nearest = min(considered, key=lambda fit: _shortfall(fit))
    tier = tiers.get(nearest.tier)
    lowest = min((_estimate(entry, tier, shape, p) for p in tier.precisions), key=lambda e: e.total)
    message = (
        f"No tier fits {entry.name} ({entry.params / 1e9:.1f}B parameters). "
        f"The nearest is {nearest.tier} ({nearest.hardware}): {nearest.reason}"
    )
    if lowest.total > tier.model_memory_bytes and lowest.precision != nearest.precision:
        message += (
            f"; even at {lowest.precision.value} it needs {format_bytes(lowest.total)}, "
            f"more than the tier's {format_bytes(tier.model_memory_bytes)}"
        )
    message += (
        f". A tier with at least {format_bytes(lowest.total)} of "
        f"{'GPU' if tier.accelerator else 'host'} memory would fit it at {lowest.precision.value}"
    )
    if lowest.precision in QUANTIZED and not allow:
        message += " with quantization allowed"
    return message + "; add one in a tier file (--tiers FILE or REDTIER_TIERS)."


def _shortfall(fit: TierFit) -> float:
    if fit.memory is None:
        return float("inf")
    return fit.memory.total / fit.memory_limit_bytes
