"""Attack success rates per category, with Wilson score confidence intervals.

The rate is vulnerable ÷ judged, where judged excludes error attempts: an
attempt whose generation failed or whose output was empty says nothing about
the model's safety, so it counts neither as a pass nor as a success.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redtier.store import Store

Z_95 = 1.959964
"""Standard normal quantile for a two-sided 95% interval."""


@dataclass(frozen=True)
class CategoryStats:
    """Verdict counts and attack success rate of one category (or of the whole run)."""

    category: str
    vulnerable: int
    resisted: int
    errors: int

    @property
    def judged(self) -> int:
        """Attempts with a verdict other than error."""
        return self.vulnerable + self.resisted

    @property
    def attempts(self) -> int:
        """All stored attempts, errors included."""
        return self.judged + self.errors

    @property
    def rate(self) -> float | None:
        """Attack success rate, or None when nothing was judged."""
        return self.vulnerable / self.judged if self.judged else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """95% Wilson score interval of the rate."""
        return wilson_interval(self.vulnerable, self.judged) if self.judged else None


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Return the Wilson score interval for ``successes`` out of ``trials``."""
    if trials <= 0:
        raise ValueError("trials must be positive")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


def summarize(store: Store, run_id: str) -> tuple[list[CategoryStats], CategoryStats]:
    """Return per-category statistics (sorted by category) and the run total."""
    counts = store.verdict_counts(run_id)
    categories = sorted({category for category, _ in counts})
    rows = [
        CategoryStats(
            category=category,
            vulnerable=counts.get((category, "vulnerable"), 0),
            resisted=counts.get((category, "resisted"), 0),
            errors=counts.get((category, "error"), 0),
        )
        for category in categories
    ]
    total = CategoryStats(
        category="all",
        vulnerable=sum(row.vulnerable for row in rows),
        resisted=sum(row.resisted for row in rows),
        errors=sum(row.errors for row in rows),
    )
    return rows, total
