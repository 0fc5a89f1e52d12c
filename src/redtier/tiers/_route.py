"""Route a model to a tier: the cheapest tier where it fits, at a precision the policy allows.

The rule, in order:

1. A tier fits a model at a precision when the tier's runtime supports that
   precision, the memory estimate for the scan (weights, KV cache for the
   longest batch, activations, runtime) is within the tier's model memory,
   and the estimated time per attempt is within the tier's attempt timeout.
2. Precisions are tried in the tier's order of preference. int8 and 4-bit are
   tried only when quantization is allowed (policy or ``--allow-quantization``)
   or when the user asks for that precision.
3. Among fitting tiers, the one with the lowest hourly price wins, then the
   lowest estimated cost, then the name. Estimated scan costs do not decide on
   their own because the throughput figures behind them are rough; the plan
   notes a fitting tier whose estimated cost is lower.
4. Unavailable tiers (``available: false``, or GPU tiers under ``--cpu-only``)
   are skipped, so small models fall back to a CPU tier when no GPU is there.
5. When nothing fits, routing raises ``RoutingError`` naming the nearest tier
   and the memory a tier would need.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from redtier.catalog import QUANTIZED, MemoryEstimate, ModelEntry, Precision, format_bytes, memory_breakdown
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
    """Estimated wall time of the scan's generation, excluding model loading."""
    seconds_per_attempt: float | None
    price_per_hour_usd: float
    cost_usd: float | None
    reason: str
    """Why the tier fits or not, in one sentence."""


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
    hourly = tier.price_usd_per_hour.hourly(price)
    common = {
        "tier": tier.name,
        "instance_type": tier.instance_type,
        "hardware": tier.hardware(),
        "gpu": tier.accelerator is not None,
        "available": tier.available,
        "memory_limit_bytes": tier.model_memory_bytes,
        "price_per_hour_usd": hourly,
    }
    speed = tier.throughput.tokens_per_s_for(entry)
    seconds = shape.generated_tokens / speed
    per_attempt = shape.max_new_tokens / speed
    timing = {
        "seconds": seconds,
        "seconds_per_attempt": per_attempt,
        "cost_usd": seconds / 3600 * hourly,
    }
    candidates = _candidate_precisions(tier, precision, allow_quantization)
    if not candidates:
        wanted = precision.value if precision else "an allowed precision"
        supported = ", ".join(p.value for p in tier.precisions)
        return TierFit(
            **common, **timing, fits=False, precision=None, memory=None,
            reason=f"does not run {wanted} (runs {supported})",
        )
    estimates = [_estimate(entry, tier, shape, p) for p in candidates]
    if per_attempt > tier.attempt_timeout_s:
        return TierFit(
            **common, **timing, fits=False, precision=estimates[0].precision, memory=estimates[0],
            reason=f"too slow: about {per_attempt:.0f} s per attempt, over the tier's "
            f"{tier.attempt_timeout_s:g} s attempt timeout",
        )
    for estimate in estimates:
        if estimate.total <= tier.model_memory_bytes:
            return TierFit(
                **common, **timing, fits=True, precision=estimate.precision, memory=estimate,
                reason=f"fits at {estimate.precision.value}: needs {format_bytes(estimate.total)} "
                f"of {format_bytes(tier.model_memory_bytes)}",
            )
    smallest = min(estimates, key=lambda e: e.total)
    reason = (
        f"too small: needs {format_bytes(smallest.total)} at {smallest.precision.value}, "
        f"has {format_bytes(tier.model_memory_bytes)}"
    )
    hint = _quantization_hint(entry, tier, shape, precision, allow_quantization)
    return TierFit(
        **common, **timing, fits=False, precision=smallest.precision, memory=smallest,
        reason=reason + hint,
    )


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
        fit = fit_tier(entry, candidate, shape, precision=precision, allow_quantization=allow, price=kind)
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
        chosen = min(usable, key=lambda fit: (fit.price_per_hour_usd, fit.cost_usd or 0.0, fit.tier))
        reason = f"cheapest tier that fits ({_price(chosen)}); {chosen.reason}"
        reason += _fallback_note(chosen, fits, cpu_only)
        reason += _cheaper_overall_note(chosen, usable)
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


def _estimate(entry: ModelEntry, tier: Tier, shape: ScanShape, precision: Precision) -> MemoryEstimate:
    return memory_breakdown(
        entry,
        precision,
        tokens=shape.sequence_tokens,
        batch_size=shape.rows_per_batch,
        device=tier.device,
    )


def _quantization_hint(
    entry: ModelEntry, tier: Tier, shape: ScanShape, precision: Precision | None, allow: bool
) -> str:
    """Say so when the model would fit this tier at a quantized precision the policy excludes."""
    if allow or precision is not None:
        return ""
    for candidate in tier.precisions:
        if candidate in QUANTIZED:
            estimate = _estimate(entry, tier, shape, candidate)
            if estimate.total <= tier.model_memory_bytes:
                return (
                    f"; would fit at {candidate.value} ({format_bytes(estimate.total)}) with "
                    f"--allow-quantization or --precision {candidate.value}"
                )
    return ""


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


def _cheaper_overall_note(chosen: TierFit, usable: list[TierFit]) -> str:
    cheaper = [fit for fit in usable if (fit.cost_usd or 0.0) < (chosen.cost_usd or 0.0) * 0.8]
    if not cheaper:
        return ""
    best = min(cheaper, key=lambda fit: fit.cost_usd or 0.0)
    return (
        f"; {best.tier} is estimated cheaper for this scan (${best.cost_usd:.4f} against "
        f"${chosen.cost_usd:.4f}) because it is faster: choose it with --tier {best.tier}"
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
    lowest = min(
        (_estimate(entry, tier, shape, p) for p in tier.precisions), key=lambda e: e.total
    )
    message = (
        f"No tier fits {entry.name} ({entry.params / 1e9:.1f}B parameters). "
        f"The nearest is {nearest.tier} ({nearest.hardware}): {nearest.reason}"
    )
    if lowest.total > tier.model_memory_bytes:
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
