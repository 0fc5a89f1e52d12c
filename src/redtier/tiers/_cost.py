"""Cost: estimated before a run from its tier's speed and price, measured while it runs.

The estimate is ``(start + weights ÷ load speed + attempts × max_new_tokens ÷
tokens per second) × hourly price``, from the tier's ``start_s``,
``load_gb_per_s`` and throughput. It assumes every reply uses its whole token
budget, and it ignores prompt processing and downloads. The measured cost is wall time (model
loading included) times the hourly price, summed over every session that
worked on the run, and is stored in the ``run_costs`` table.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from redtier.errors import ConfigError
from redtier.scan import StopScan
from redtier.store import AttemptRow, RunCostRow, Store, utcnow
from redtier.tiers._route import TierFit
from redtier.tiers._tier import PriceKind

logger = logging.getLogger(__name__)

SAVE_INTERVAL_S = 10.0
"""How often a running meter writes the spend so far, so a killed worker loses little."""
STOPPED_BUDGET = "stopped_budget"
"""Run status after a budget stop."""

Clock = Callable[[], float]


class BudgetError(ConfigError):
    """A scan whose estimated cost exceeds its budget."""


def check_budget(fit: TierFit, attempts: int, budget_usd: float | None) -> None:
    """Raise ``BudgetError`` when the estimated cost of the scan exceeds ``budget_usd``."""
    if budget_usd is None or fit.cost_usd is None or fit.cost_usd <= budget_usd:
        return
    load_usd = (fit.load_seconds or 0.0) / 3600 * fit.price_per_hour_usd
    per_attempt = (fit.cost_usd - load_usd) / max(attempts, 1)
    affordable = (
        math.floor(max(budget_usd - load_usd, 0.0) / per_attempt) if per_attempt > 0 else attempts
    )
    advice = (
        f"--limit {affordable} keeps the estimate within it"
        if affordable >= 1
        else "not even one attempt fits in it"
    )
    raise BudgetError(
        f"The scan's estimated cost on {fit.tier} is ${fit.cost_usd:.4f} ({attempts} attempts, "
        f"about {fit.seconds or 0:.0f} s at ${fit.price_per_hour_usd:.3f}/h), over the "
        f"--budget of ${budget_usd:.4f}: {advice}. Raise --budget, or choose a cheaper tier."
    )


def remaining_fit(fit: TierFit, share: float) -> TierFit:
    """Return ``fit`` for ``share`` of its attempts, as when a resumed scan has the rest stored.

    A resumed scan starts the worker and loads the weights again, so only the
    generation time shrinks.
    """
    load = fit.load_seconds or 0.0
    seconds = ((fit.seconds or 0.0) - load) * share + load
    return fit.model_copy(
        update={"seconds": seconds, "cost_usd": seconds / 3600 * fit.price_per_hour_usd}
    )


class CostMeter:
    """Measures a run's spend on its tier, saves it, and stops the run at its budget.

    Create it when the work starts (before the model loads, since loading is
    paid for too), call :meth:`attach` once the run exists, pass
    :meth:`on_attempt` as the scan's attempt callback, and call :meth:`finish`
    at the end, whatever the outcome.
    """

    def __init__(
        self,
        store: Store,
        fit: TierFit,
        *,
        price_kind: PriceKind,
        budget_usd: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._store = store
        self._fit = fit
        self._price_kind = price_kind
        self._budget = budget_usd
        self._clock = clock
        self._started = clock()
        self._earlier_wall_s = 0.0
        self._earlier_usd = 0.0
        self._last_save = self._started
        self.run_id: str | None = None

    @property
    def tier(self) -> str:
        """The name of the tier the run is priced on."""
        return self._fit.tier

    @property
    def price_per_hour_usd(self) -> float:
        """The tier's hourly price this meter charges."""
        return self._fit.price_per_hour_usd

    def wall_s(self) -> float:
        """Return the wall time spent on the run so far, earlier sessions included."""
        return self._earlier_wall_s + (self._clock() - self._started)

    def spent_usd(self) -> float:
        """Return the spend so far: earlier sessions as stored, this one at the tier's price.

        An earlier session keeps the price it ran at, so resuming with other tier
        prices does not reprice what was already spent.
        """
        session_s = self._clock() - self._started
        return self._earlier_usd + session_s / 3600 * self.price_per_hour_usd

    def attach(self, run_id: str) -> None:
        """Start charging ``run_id``, adding to the spend of its earlier sessions."""
        self.run_id = run_id
        earlier = self._store.get_cost(run_id)
        if earlier is not None:
            self._earlier_wall_s = earlier.wall_s
            self._earlier_usd = earlier.cost_usd
        self.save()

    def on_attempt(self, _row: AttemptRow) -> None:
        """Save the spend now and then; raise ``StopScan`` once it reaches the budget."""
        now = self._clock()
        over = self._budget is not None and self.spent_usd() >= self._budget
        if over or now - self._last_save >= SAVE_INTERVAL_S:
            self.save()
        if over:
            assert self._budget is not None
            raise StopScan(
                STOPPED_BUDGET,
                f"spent ${self.spent_usd():.4f} of the ${self._budget:.4f} budget on "
                f"{self._fit.tier} by the last stored attempt",
            )

    def finish(self) -> RunCostRow | None:
        """Save the final wall time, spend and tokens; return the record."""
        if self.run_id is None:
            return None
        return self.save(with_tokens=True)

    def save(self, *, with_tokens: bool = False) -> RunCostRow | None:
        """Write the cost record of the attached run."""
        if self.run_id is None:
            return None
        self._last_save = self._clock()
        fit = self._fit
        row = RunCostRow(
            run_id=self.run_id,
            tier=fit.tier,
            instance_type=fit.instance_type,
            price_kind=self._price_kind.value,
            price_per_hour_usd=fit.price_per_hour_usd,
            precision=fit.precision.value if fit.precision else None,
            estimated_s=fit.seconds,
            estimated_usd=fit.cost_usd,
            budget_usd=self._budget,
            wall_s=self.wall_s(),
            cost_usd=self.spent_usd(),
            tokens_out=self._store.tokens_out(self.run_id) if with_tokens else 0,
            updated_at=utcnow(),
        )
        if not with_tokens:
            earlier = self._store.get_cost(self.run_id)
            row.tokens_out = earlier.tokens_out if earlier is not None else 0
        self._store.save_cost(row)
        return row
