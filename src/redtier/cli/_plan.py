"""`redtier plan`: route each model to a tier and estimate the scan's memory, time and cost.

Also contains the routing options and helpers that `scan` and `submit` share.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.table import Table

from redtier.catalog import ModelEntry, Precision, format_bytes, load_catalog
from redtier.cli._common import console, print_json, settings_of
from redtier.errors import RedtierError
from redtier.scan import DEFAULT_TRANSFORMS, PreparedScan, ScanOptions
from redtier.store import RunCostRow, Store
from redtier.tiers import (
    BudgetError,
    CostMeter,
    PriceKind,
    RouteDecision,
    RoutingError,
    ScanShape,
    TierFit,
    TierSet,
    check_budget,
    check_runs_here,
    load_tiers,
    machine_has_gpu,
    remaining_fit,
    resolve_tiers_file,
    route,
)

TiersOption = Annotated[
    str | None,
    typer.Option(
        "--tiers",
        help="YAML file of tiers that adds to or replaces the built-in ones. Default: REDTIER_TIERS.",
    ),
]
TierOption = Annotated[
    str | None,
    typer.Option(
        "--tier", help="Run on this tier instead of the cheapest that fits (see `redtier plan`)."
    ),
]
PrecisionOption = Annotated[
    Precision | None,
    typer.Option("--precision", help="Weight precision; default: the tier's first that fits."),
]
QuantizeFlag = Annotated[
    bool | None,
    typer.Option(
        "--allow-quantization/--no-quantization",
        help="Let routing pick int8 or 4-bit weights to fit a cheaper tier. Default: the tier file's policy (off).",
    ),
]
SpotFlag = Annotated[
    bool | None,
    typer.Option(
        "--spot/--on-demand",
        help="Price with spot or on-demand hourly rates. Default: the tier file's policy (on demand).",
    ),
]
CpuOnlyFlag = Annotated[
    bool, typer.Option("--cpu-only", help="Route only to CPU tiers, as when no GPU worker runs.")
]


def load_tier_set(tiers_file: str | None) -> TierSet:
    """Return the built-in tiers plus the file named by ``--tiers`` or REDTIER_TIERS."""
    return load_tiers(resolve_tiers_file(tiers_file))


def price_kind(spot: bool | None) -> PriceKind | None:
    """Turn ``--spot/--on-demand`` into a price kind; None keeps the tier file's policy."""
    if spot is None:
        return None
    return PriceKind.SPOT if spot else PriceKind.ON_DEMAND


def plan(
    ctx: typer.Context,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model", help="Catalog model to plan; repeatable. Default: every catalog model."
        ),
    ] = None,
    probes: Annotated[
        str | None, typer.Option(help="Probe ids, categories or globs, as for `redtier scan`.")
    ] = None,
    transforms: Annotated[
        str, typer.Option(help="Transforms wrapping harmful prompts, comma-separated, or `none`.")
    ] = ",".join(DEFAULT_TRANSFORMS),
    limit: Annotated[int | None, typer.Option(min=1, help="Maximum number of attempts.")] = None,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, max=8192, help="Token budget of each reply.")
    ] = 128,
    batch_size: Annotated[
        int, typer.Option(min=1, max=512, help="Prompts generated together in one batch.")
    ] = 32,
    tier: TierOption = None,
    precision: PrecisionOption = None,
    allow_quantization: QuantizeFlag = None,
    spot: SpotFlag = None,
    cpu_only: CpuOnlyFlag = False,
    tiers_file: TiersOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Choose a tier for each model and estimate memory, time and cost; exit 1 if a model fits no tier."""
    settings = settings_of(ctx)
    catalog = load_catalog(settings.catalog_file)
    tiers = load_tier_set(tiers_file)
    entries = [catalog.get(name) for name in models] if models else list(catalog)
    options = ScanOptions(
        model="plan",
        probes=probes,
        transforms=parse_transforms(transforms),
        limit=limit,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    shape = ScanShape.of(options)

    results: list[tuple[ModelEntry, RouteDecision | RedtierError]] = []
    for entry in entries:
        try:
            decision: RouteDecision | RedtierError = route(
                entry,
                tiers,
                shape,
                tier=tier,
                precision=precision,
                allow_quantization=allow_quantization,
                price=price_kind(spot),
                cpu_only=cpu_only,
            )
        except RedtierError as error:
            decision = error
        results.append((entry, decision))

    if as_json:
        print_json([_decision_record(entry, decision) for entry, decision in results])
    else:
        console.print(_plan_table(results, shape, tiers))
    if any(isinstance(decision, RedtierError) for _, decision in results):
        raise typer.Exit(1)


def parse_transforms(text: str) -> tuple[str, ...]:
    """Split ``--transforms`` into names; ``none`` means no transforms."""
    if text.strip().lower() == "none":
        return ()
    return tuple(name.strip() for name in text.split(",") if name.strip())


def price_scan(
    store: Store, prepared: PreparedScan, tiers: TierSet
) -> tuple[PreparedScan, CostMeter | None]:
    """Route a scan that names a tier or a budget, check the budget, and make its cost meter.

    Returns the scan with the routed precision in its options, so the model
    loads at the precision the tier was priced for, and the meter. A scan
    with neither a tier nor a budget is returned unchanged with no meter, and
    runs unpriced. Raises ``RoutingError`` or ``BudgetError`` before any
    model loads.
    """
    options = prepared.options
    if options.tier is None and options.budget_usd is None:
        return prepared, None
    shape = ScanShape.from_plan(prepared.plan, options)
    precision = Precision(options.precision) if options.precision else None
    if options.tier is None and not machine_has_gpu():
        decision = _route_on_cpu(prepared, tiers, shape, precision)
    else:
        decision = route(prepared.entry, tiers, shape, tier=options.tier, precision=precision)
    check_runs_here(
        tiers.get(decision.tier),
        "the scan",
        "Give --tier cpu_small to scan here, or queue it with `redtier submit` for a worker "
        "on a machine with a GPU.",
    )
    done = len(store.done_keys(prepared.run.id)) if prepared.run is not None else 0
    remaining = shape.attempts - done
    share = remaining / shape.attempts if shape.attempts else 0.0
    fit = decision.chosen
    budget = options.budget_usd
    if budget is not None and prepared.run is not None:
        budget = _budget_left(store, prepared.run.id, budget)
    check_budget(remaining_fit(fit, share), remaining, budget)
    meter = CostMeter(store, fit, price_kind=decision.price, budget_usd=options.budget_usd)
    routed = options.model_copy(update={"precision": decision.precision.value})
    return dataclasses.replace(prepared, options=routed), meter


def _route_on_cpu(
    prepared: PreparedScan, tiers: TierSet, shape: ScanShape, precision: Precision | None
) -> RouteDecision:
    """Route a scan on a machine without a GPU among the tiers it can run.

    Raises:
        RoutingError: no CPU tier fits. The message names the cheapest GPU tier that fits.
    """
    cpu_only = tuple(
        tier if tier.accelerator is None else tier.model_copy(update={"available": False})
        for tier in tiers.tiers
    )
    try:
        return route(
            prepared.entry,
            tiers.model_copy(update={"tiers": cpu_only}),
            shape,
            precision=precision,
        )
    except RoutingError:
        anywhere = route(prepared.entry, tiers, shape, precision=precision)
        raise RoutingError(
            f"{prepared.entry.name} needs a GPU tier (the cheapest that fits is "
            f"{anywhere.tier}), and this machine shows no GPU. Queue it with `redtier submit` "
            "for a worker on a machine with a GPU."
        ) from None


def _budget_left(store: Store, run_id: str, budget_usd: float) -> float:
    """Return what a resumed run may still spend of ``budget_usd``.

    Raises:
        BudgetError: the run's earlier sessions already spent the budget.
    """
    earlier = store.get_cost(run_id)
    if earlier is None:
        return budget_usd
    if earlier.cost_usd >= budget_usd:
        raise BudgetError(
            f"Run {run_id} has already spent ${earlier.cost_usd:.4f} of its ${budget_usd:.4f} "
            f"budget. Give a higher budget to finish it: redtier scan --resume {run_id} "
            "--budget DOLLARS."
        )
    return budget_usd - earlier.cost_usd


def _plan_table(
    results: list[tuple[ModelEntry, RouteDecision | RedtierError]], shape: ScanShape, tiers: TierSet
) -> Table:
    title = (
        f"Plan: {shape.attempts} attempts × up to {shape.max_new_tokens} new tokens per model "
        f"(tiers: {', '.join(tiers.sources)}; prices are estimates)"
    )
    table = Table(title=title, title_justify="left", show_lines=True)
    for name in ("model", "tier", "precision", "memory", "time", "cost", "why", "alternatives"):
        table.add_column(name, justify="right" if name in {"memory", "time", "cost"} else "left")
    for entry, decision in results:
        if isinstance(decision, RedtierError):
            table.add_row(entry.name, "[red]none[/red]", "—", "—", "—", "—", str(decision), "")
            continue
        fit = decision.chosen
        table.add_row(
            entry.name,
            f"{fit.tier}\n{fit.instance_type}",
            decision.precision.value,
            _memory_cell(fit),
            format_duration(fit.seconds),
            _cost_cell(fit),
            decision.reason,
            "\n".join(_alternative_line(alt) for alt in decision.alternatives),
        )
    return table


def _memory_cell(fit: TierFit) -> str:
    if fit.memory is None:
        return "—"
    return f"{format_bytes(fit.memory.total)}\nof {format_bytes(fit.memory_limit_bytes)}"


def _cost_cell(fit: TierFit) -> str:
    return f"{format_usd(fit.cost_usd)}\n${fit.price_per_hour_usd:.3f}/h"


def _alternative_line(fit: TierFit) -> str:
    unavailable = "" if fit.available else " (unavailable)"
    if not fit.fits:
        return f"{fit.tier}{unavailable}: {fit.reason}"
    assert fit.precision is not None
    return (
        f"{fit.tier}{unavailable}: {fit.precision.value}, {format_duration(fit.seconds)}, "
        f"{format_usd(fit.cost_usd)}"
    )


def format_usd(amount: float | None) -> str:
    """Format US dollars with four decimals, or ``<$0.0001`` for less."""
    if amount is None:
        return "—"
    if 0 < amount < 0.0001:
        return "<$0.0001"
    return f"${amount:.4f}"


def format_duration(seconds: float | None) -> str:
    """Format seconds as ``45 s``, ``12 min`` or ``3.5 h``."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _decision_record(entry: ModelEntry, decision: RouteDecision | RedtierError) -> dict[str, Any]:
    if isinstance(decision, RedtierError):
        return {"model": entry.name, "params": entry.params, "tier": None, "error": str(decision)}
    return {
        "model": decision.model,
        "params": decision.params,
        "tier": decision.tier,
        "precision": decision.precision.value,
        "reason": decision.reason,
        "price": decision.price.value,
        "chosen": decision.chosen.model_dump(mode="json"),
        "alternatives": [fit.model_dump(mode="json") for fit in decision.alternatives],
    }


def cost_record(cost: RunCostRow) -> dict[str, Any]:
    """Return a run's cost record as JSON-ready values."""
    return {
        "tier": cost.tier,
        "instance_type": cost.instance_type,
        "price_kind": cost.price_kind,
        "price_per_hour_usd": cost.price_per_hour_usd,
        "precision": cost.precision,
        "estimated_s": cost.estimated_s,
        "estimated_usd": cost.estimated_usd,
        "budget_usd": cost.budget_usd,
        "wall_s": cost.wall_s,
        "cost_usd": cost.cost_usd,
        "tokens_out": cost.tokens_out,
    }


def cost_line(cost: RunCostRow) -> str:
    """Describe a run's measured cost against its estimate in one line."""
    text = (
        f"Cost on {cost.tier} ({cost.instance_type}, ${cost.price_per_hour_usd:.3f}/h "
        f"{cost.price_kind.replace('_', '-')}): {format_usd(cost.cost_usd)} for "
        f"{format_duration(cost.wall_s)} of wall time"
    )
    at_this_price = cost.wall_s / 3600 * cost.price_per_hour_usd
    if abs(cost.cost_usd - at_this_price) > max(0.01 * cost.cost_usd, 1e-6):
        text += ", earlier sessions counted at the prices they ran at"
    if cost.estimated_usd is not None:
        text += f"; estimated {format_usd(cost.estimated_usd)}"
    if cost.budget_usd is not None:
        text += f"; budget {format_usd(cost.budget_usd)}"
    return text + "."
