"""Routing: the cheapest tier that fits, precision and quantization, overrides and refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from redtier.catalog import ModelEntry, Precision, load_catalog
from redtier.scan import ScanOptions
from redtier.tiers import PriceKind, RoutingError, ScanShape, TierSet, fit_tier, load_tiers, route

EXPECTED_ROUTES = {
    "distilgpt2": ("cpu_small", "fp32"),
    "gpt2": ("cpu_small", "fp32"),
    "smollm-135m": ("cpu_small", "fp32"),
    "smollm2-135m-instruct": ("cpu_small", "fp32"),
    "llama-3.2-1b": ("gpu_small", "fp16"),
    "phi-3.5-mini": ("gpu_small", "fp16"),
    "mistral-7b": ("gpu_large", "bf16"),
}
"""The tier for a default scan (every probe, 128 new tokens, batches of 32) of each catalog model."""


@pytest.fixture(scope="module")
def default_shape() -> ScanShape:
    return ScanShape.of(ScanOptions(model="any"))


@pytest.fixture(scope="module")
def tiers() -> TierSet:
    return load_tiers()


def model(name: str) -> ModelEntry:
    return load_catalog().get(name)


@pytest.mark.parametrize(("name", "expected"), EXPECTED_ROUTES.items())
def test_catalog_model_routes_to_its_tier(
    name: str, expected: tuple[str, str], tiers: TierSet, default_shape: ScanShape
) -> None:
    decision = route(model(name), tiers, default_shape)
    assert (decision.tier, decision.precision.value) == expected
    assert decision.reason.startswith("cheapest tier that fits")
    assert decision.chosen.memory is not None
    assert decision.chosen.memory.total <= decision.chosen.memory_limit_bytes
    assert {fit.tier for fit in decision.alternatives} | {decision.tier} == set(tiers.names())


def test_plan_command_routes_whole_catalog(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "REDTIER_DB": str(tmp_path / "r.db")}
    env.pop("REDTIER_CATALOG", None)
    env.pop("REDTIER_TIERS", None)
    result = subprocess.run(
        [sys.executable, "-m", "redtier", "plan", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    plans = {item["model"]: item for item in json.loads(result.stdout)}
    assert set(plans) == set(load_catalog().names()), "add new catalog models to EXPECTED_ROUTES"
    routes = {name: (item["tier"], item["precision"]) for name, item in plans.items()}
    assert routes == EXPECTED_ROUTES
    smollm = plans["smollm2-135m-instruct"]["chosen"]
    assert smollm["seconds"] > 0
    assert smollm["cost_usd"] == pytest.approx(smollm["seconds"] / 3600 * 0.085)


def test_plan_command_table_names_tier_and_reason(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "REDTIER_DB": str(tmp_path / "r.db"),
        "COLUMNS": "250",
    }
    result = subprocess.run(
        [sys.executable, "-m", "redtier", "plan", "--model", "mistral-7b", "--model", "gpt2"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "gpu_large" in result.stdout
    assert "g5.2xlarge" in result.stdout
    assert "cheapest tier that fits" in result.stdout
    assert "--allow-quantization" in result.stdout


def test_plan_command_refuses_70b_and_exits_1(tmp_path: Path, catalog_with_70b: Path) -> None:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "REDTIER_DB": str(tmp_path / "r.db"),
        "REDTIER_CATALOG": str(catalog_with_70b),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "redtier",
            "plan",
            "--model",
            "llama-3.1-70b",
            "--model",
            "gpt2",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    plans = {item["model"]: item for item in json.loads(result.stdout)}
    assert plans["gpt2"]["tier"] == "cpu_small"
    assert plans["llama-3.1-70b"]["tier"] is None
    assert "nearest is gpu_large" in plans["llama-3.1-70b"]["error"]


def test_70b_fits_no_tier_even_at_4bit(
    seventy_b: ModelEntry, tiers: TierSet, default_shape: ScanShape
) -> None:
    with pytest.raises(RoutingError) as caught:
        route(seventy_b, tiers, default_shape, allow_quantization=True)
    message = str(caught.value)
    assert "No tier fits llama-3.1-70b (70.6B parameters)" in message
    assert "The nearest is gpu_large" in message
    assert "at 4bit" in message
    assert "--tiers FILE" in message
    large = fit_tier(seventy_b, tiers.get("gpu_large"), default_shape, precision=Precision.INT4)
    assert not large.fits
    assert large.memory is not None
    assert large.memory.weights > 24 * 1000**3


def test_70b_refusal_says_quantization_is_needed(
    seventy_b: ModelEntry, tiers: TierSet, default_shape: ScanShape
) -> None:
    with pytest.raises(RoutingError, match="at 4bit with quantization allowed"):
        route(seventy_b, tiers, default_shape)


def test_quantization_only_when_allowed(tiers: TierSet, default_shape: ScanShape) -> None:
    mistral = model("mistral-7b")
    strict = route(mistral, tiers, default_shape)
    assert strict.tier == "gpu_large"
    assert "gpu_small ($0.526/h) would fit at int8" in strict.reason

    allowed = route(mistral, tiers, default_shape, allow_quantization=True)
    assert (allowed.tier, allowed.precision) == ("gpu_small", Precision.INT8)
    assert "fp16 would need" in allowed.reason

    asked = route(mistral, tiers, default_shape, precision=Precision.INT8)
    assert (asked.tier, asked.precision) == ("gpu_small", Precision.INT8)


def test_policy_in_tier_file_allows_quantization(tmp_path: Path, default_shape: ScanShape) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text("policy: {allow_quantization: true}\n", encoding="utf-8")
    decision = route(model("mistral-7b"), load_tiers(path), default_shape)
    assert (decision.tier, decision.precision) == ("gpu_small", Precision.INT8)
    assert (
        route(model("mistral-7b"), load_tiers(path), default_shape, allow_quantization=False).tier
        == "gpu_large"
    )


def test_lower_precision_chosen_when_preferred_does_not_fit(tiers: TierSet) -> None:
    shape = ScanShape.of(ScanOptions(model="any", max_new_tokens=512))
    decision = route(model("gpt2"), tiers, shape)
    assert (decision.tier, decision.precision) == ("cpu_small", Precision.BF16)
    assert "fp32 would need" in decision.reason


def test_tier_override_that_does_not_fit_is_explained(
    tiers: TierSet, default_shape: ScanShape
) -> None:
    with pytest.raises(RoutingError) as caught:
        route(model("mistral-7b"), tiers, default_shape, tier="gpu_small")
    message = str(caught.value)
    assert "cannot run on tier 'gpu_small'" in message
    assert "needs 17.1 GiB at fp16, has 15.0 GiB" in message
    assert "Tiers that fit: gpu_large" in message


def test_tier_override_picks_a_dearer_tier(tiers: TierSet, default_shape: ScanShape) -> None:
    decision = route(model("distilgpt2"), tiers, default_shape, tier="gpu_large")
    assert (decision.tier, decision.precision) == ("gpu_large", Precision.BF16)
    assert decision.reason.startswith("chosen with --tier")


def test_unsupported_precision_on_a_tier(tiers: TierSet, default_shape: ScanShape) -> None:
    with pytest.raises(RoutingError, match=r"does not run bf16 \(runs fp16, int8, 4bit\)"):
        route(model("gpt2"), tiers, default_shape, tier="gpu_small", precision=Precision.BF16)


def test_cpu_fallback_without_gpu(cpu_large_tiers: Path, default_shape: ScanShape) -> None:
    tiers = load_tiers(cpu_large_tiers)
    llama = model("llama-3.2-1b")
    assert route(llama, tiers, default_shape).tier == "gpu_small"

    fallback = route(llama, tiers, default_shape, cpu_only=True)
    assert (fallback.tier, fallback.precision) == ("cpu_large", Precision.FP32)
    assert "CPU fallback because --cpu-only is set" in fallback.reason
    assert "gpu_small" in fallback.reason


def test_cpu_fallback_refuses_large_models_as_too_slow(
    cpu_large_tiers: Path, default_shape: ScanShape
) -> None:
    with pytest.raises(RoutingError) as caught:
        route(model("mistral-7b"), load_tiers(cpu_large_tiers), default_shape, cpu_only=True)
    assert "nearest is cpu_large" in str(caught.value)
    assert "too slow" in str(caught.value)


def test_unavailable_tier_is_skipped(tmp_path: Path, default_shape: ScanShape) -> None:
    path = tmp_path / "tiers.yaml"
    base = load_tiers().get("gpu_small").model_dump(by_alias=True, mode="json")
    path.write_text(json.dumps({"tiers": [{**base, "available": False}]}), encoding="utf-8")
    decision = route(model("llama-3.2-1b"), load_tiers(path), default_shape)
    assert decision.tier == "gpu_large"
    skipped = next(fit for fit in decision.alternatives if fit.tier == "gpu_small")
    assert skipped.fits and not skipped.available


def test_spot_prices_lower_the_estimate(tiers: TierSet, default_shape: ScanShape) -> None:
    on_demand = route(model("gpt2"), tiers, default_shape)
    spot = route(model("gpt2"), tiers, default_shape, price=PriceKind.SPOT)
    assert spot.tier == on_demand.tier
    assert spot.chosen.price_per_hour_usd == 0.035
    assert spot.chosen.cost_usd is not None and on_demand.chosen.cost_usd is not None
    assert spot.chosen.cost_usd < on_demand.chosen.cost_usd
