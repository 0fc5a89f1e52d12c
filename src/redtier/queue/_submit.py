"""Route a scan and queue it as a job."""

from __future__ import annotations

from redtier.catalog import Precision, load_catalog
from redtier.queue._queue import JobQueue
from redtier.queue._schema import JobRow
from redtier.scan import ScanOptions, pin_prompt_files
from redtier.settings import Settings
from redtier.tiers import PriceKind, RouteDecision, ScanShape, TierSet, check_budget, route


def submit_scan(
    queue: JobQueue,
    settings: Settings,
    tiers: TierSet,
    options: ScanOptions,
    *,
    priority: int = 0,
    allow_quantization: bool | None = None,
    price: PriceKind | None = None,
    cpu_only: bool = False,
) -> tuple[JobRow, RouteDecision]:
    """Validate and route ``options``, check its budget, and queue it.

    Raises before queuing when the model, probes, tier or budget is invalid.
    A job whose options name a tier runs only on that tier. Otherwise any tier
    it fits may run it, and the workers of its routed tier take it first.
    """
    entry = load_catalog(settings.catalog_file).get(options.model)
    options = pin_prompt_files(options)
    shape = ScanShape.of(options)
    decision = route(
        entry,
        tiers,
        shape,
        tier=options.tier,
        precision=Precision(options.precision) if options.precision else None,
        allow_quantization=allow_quantization,
        price=price,
        cpu_only=cpu_only,
    )
    check_budget(decision.chosen, shape.attempts, options.budget_usd)
    eligible = [decision.tier]
    if options.tier is None:
        eligible += [fit.tier for fit in decision.alternatives if fit.fits and fit.available]
    job = queue.submit(
        model=entry.name,
        options=options.model_dump(mode="json"),
        priority=priority,
        tier=decision.tier,
        precision=decision.precision.value,
        eligible_tiers=eligible,
        planned=shape.attempts,
        estimated_s=decision.chosen.seconds,
        estimated_usd=decision.chosen.cost_usd,
    )
    return job, decision
