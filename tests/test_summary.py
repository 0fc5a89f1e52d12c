from __future__ import annotations

import pytest

from redtier.reports import CategoryStats, wilson_interval


def test_wilson_interval_matches_reference_values() -> None:
    # Reference: Wilson score interval for 8/10 at 95%, as given by
    # statsmodels.stats.proportion.proportion_confint(8, 10, method="wilson").
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_at_the_edges() -> None:
    low, high = wilson_interval(0, 20)
    assert low == 0.0
    assert 0.1 < high < 0.2
    low, high = wilson_interval(20, 20)
    assert high == pytest.approx(1.0)
    assert 0.8 < low < 0.9


def test_errors_are_excluded_from_the_rate() -> None:
    stats = CategoryStats(category="harmful", vulnerable=2, resisted=6, errors=4)
    assert stats.attempts == 12
    assert stats.judged == 8
    assert stats.rate == pytest.approx(0.25)


def test_category_with_only_errors_has_no_rate() -> None:
    stats = CategoryStats(category="harmful", vulnerable=0, resisted=0, errors=3)
    assert stats.rate is None
    assert stats.interval is None
