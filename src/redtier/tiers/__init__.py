"""Resource tiers: which hardware a scan runs on, what it costs, and how models are routed.

- :func:`load_tiers` reads the built-in tiers and a user tier file.
- :func:`route` picks the cheapest tier a model fits, at a precision the
  policy allows, and explains the choice; :func:`fit_tier` checks one tier.
- :class:`ScanShape` measures a planned scan without loading a model.
- :class:`CostMeter` measures and stores a run's spend and stops it at its
  budget; :func:`check_budget` rejects a scan whose estimate exceeds it, and
  :func:`remaining_fit` gives the estimate for what a resumed scan has left.
- :class:`JobLimits` carries a tier's memory and time limits to a sandbox.
- :func:`check_runs_here` rejects a GPU tier on a machine that shows no GPU.
"""

from redtier.tiers._builtin import BUILTIN_TIERS_YAML
from redtier.tiers._cost import (
    STOPPED_BUDGET,
    BudgetError,
    CostMeter,
    check_budget,
    remaining_fit,
)
from redtier.tiers._file import (
    ENV_TIERS,
    load_tiers,
    parse_tiers,
    read_tier_file,
    resolve_tiers_file,
)
from redtier.tiers._limits import JobLimits
from redtier.tiers._machine import check_runs_here, machine_has_gpu
from redtier.tiers._route import RouteDecision, RoutingError, TierFit, fit_tier, route
from redtier.tiers._shape import ScanShape
from redtier.tiers._tier import (
    Accelerator,
    PriceKind,
    Prices,
    RoutingPolicy,
    Throughput,
    Tier,
    TierSet,
    parse_size,
)

__all__ = [
    "BUILTIN_TIERS_YAML",
    "ENV_TIERS",
    "STOPPED_BUDGET",
    "Accelerator",
    "BudgetError",
    "CostMeter",
    "JobLimits",
    "PriceKind",
    "Prices",
    "RouteDecision",
    "RoutingError",
    "RoutingPolicy",
    "ScanShape",
    "Throughput",
    "Tier",
    "TierFit",
    "TierSet",
    "check_budget",
    "check_runs_here",
    "fit_tier",
    "load_tiers",
    "machine_has_gpu",
    "parse_size",
    "parse_tiers",
    "read_tier_file",
    "remaining_fit",
    "resolve_tiers_file",
    "route",
]
