"""The memory estimate against the measured peak memory of the bundled model."""

from __future__ import annotations

from pathlib import Path

import pytest

from redtier.catalog import DEFAULT_MODEL, Precision
from redtier.tiers._benchmark import measure_peak, prepare_weights

pytestmark = pytest.mark.model

TOLERANCE = 0.25


@pytest.mark.parametrize("precision", [Precision.FP32, Precision.BF16])
def test_estimate_within_25_percent_of_peak_rss(precision: Precision, model_cache: Path) -> None:
    prepare_weights(DEFAULT_MODEL, model_cache)
    measured = measure_peak(precision, model_cache, batch_size=8, max_new_tokens=16)
    assert measured.peak_rss_bytes > 300 * 2**20, "the child cannot have loaded the model"
    assert abs(measured.error) <= TOLERANCE, (
        f"estimate {measured.estimate_bytes / 2**20:.0f} MiB, measured "
        f"{measured.peak_rss_bytes / 2**20:.0f} MiB ({measured.error:+.1%})"
    )
