"""Tier files: the built-in tiers, user overrides, and errors that name the bad field."""

from __future__ import annotations

from pathlib import Path

import pytest

import redtier.tiers
from redtier.catalog import Precision
from redtier.errors import ConfigError, UnknownNameError
from redtier.tiers import PriceKind, load_tiers, parse_size, read_tier_file, resolve_tiers_file

GiB = 1024**3

VALID_TIER = """\
  - name: cpu_big
    accelerator: none
    memory: 16 GiB
    attempt_timeout_s: 120
    instance_type: c6i.2xlarge
    price_usd_per_hour: {on_demand: 0.34, spot: 0.14}
    throughput: {tokens_per_s: 80, reference_params: 135M}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tiers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_public_names_are_pinned() -> None:
    assert sorted(redtier.tiers.__all__) == sorted(
        [
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
    )


def test_builtin_tiers_match_their_hardware() -> None:
    tiers = load_tiers()
    assert tiers.names() == ["cpu_small", "gpu_small", "gpu_large"]
    cpu, small, large = tiers.tiers
    assert cpu.accelerator is None
    assert cpu.memory_bytes == 2 * GiB
    assert cpu.attempt_timeout_s == 60
    assert cpu.precisions == (Precision.FP32, Precision.BF16)
    assert small.instance_type == "g4dn.xlarge"
    assert small.accelerator is not None and small.accelerator.gpu == "NVIDIA T4"
    assert Precision.BF16 not in small.precisions
    assert large.instance_type == "g5.2xlarge"
    assert large.model_memory_bytes == 23028 * 1024**2
    prices = [tier.price_usd_per_hour.on_demand for tier in tiers.tiers]
    assert prices == sorted(prices)
    assert all(
        tier.price_usd_per_hour.spot < tier.price_usd_per_hour.on_demand for tier in tiers.tiers
    )
    assert tiers.policy.allow_quantization is False
    assert tiers.policy.price is PriceKind.ON_DEMAND


def test_user_file_adds_replaces_and_sets_policy(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "policy:\n  allow_quantization: true\n"
        "tiers:\n" + VALID_TIER + "  - name: cpu_small\n    accelerator: none\n    memory: 4 GiB\n"
        "    attempt_timeout_s: 30\n    instance_type: c6i.large\n"
        "    price_usd_per_hour: {on_demand: 0.085}\n"
        "    throughput: {tokens_per_s: 20, reference_params: 135M, measured: {gpt2: 31.5}}\n",
    )
    tiers = load_tiers(path)
    assert tiers.names() == ["gpu_small", "gpu_large", "cpu_big", "cpu_small"]
    assert tiers.get("cpu_small").memory_bytes == 4 * GiB
    assert tiers.get("cpu_small").throughput.measured == {"gpt2": 31.5}
    assert tiers.get("cpu_big").price_usd_per_hour.hourly(PriceKind.SPOT) == 0.14
    assert tiers.get("cpu_small").price_usd_per_hour.hourly(PriceKind.SPOT) == 0.085
    assert tiers.policy.allow_quantization is True
    assert tiers.policy.price is PriceKind.ON_DEMAND
    assert tiers.sources == ("built-in", str(path))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("memory: 16 GiB", "memory: lots"), "tiers[0] (cpu_big): memory: expected a size"),
        (
            ("on_demand: 0.34", "on_demand: -1"),
            "tiers[0] (cpu_big): price_usd_per_hour.on_demand: Input should be greater than or equal to 0",
        ),
        (
            ("attempt_timeout_s: 120", "attempt_timeout_s: 0"),
            "attempt_timeout_s: Input should be greater than 0",
        ),
        (
            ("instance_type: c6i.2xlarge", "instance_type: c6i.2xlarge\n    colour: red"),
            "colour: Extra inputs are not permitted",
        ),
        (
            ("accelerator: none", "accelerator: none\n    precisions: [fp32, 4bit]"),
            "precisions: 4bit need a GPU",
        ),
        (
            ("accelerator: none", "accelerator: {gpu: T4, count: 0, memory: 16 GB}"),
            "accelerator.count: Input should be greater than or equal to 1",
        ),
        (
            ("accelerator: none", "accelerator: {count: 1, memory: 16 GB}"),
            "accelerator.gpu: Field required",
        ),
        (
            ("tokens_per_s: 80", "tokens_per_s: fast"),
            "throughput.tokens_per_s: Input should be a valid number",
        ),
        (
            ("reference_params: 135M", "reference_params: many"),
            "throughput.reference_params: expected a parameter count",
        ),
        (("name: cpu_big", "name: 'bad name'"), "name: String should match pattern"),
    ],
)
def test_invalid_tier_names_the_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    text = "tiers:\n" + VALID_TIER.replace(*change)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        read_tier_file(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tiers: [\n", "is not valid YAML"),
        ("- just a list\n", "expected a mapping with a `tiers:` list"),
        ("tiers: {cpu: 1}\n", "`tiers` must be a list"),
        ("tier:\n" + VALID_TIER, "unknown top-level field(s) tier"),
        ("tiers:\n  - 3\n", "tiers[0]: expected a mapping"),
        ("tiers:\n" + VALID_TIER + VALID_TIER, "tiers[1].name: tier 'cpu_big' is defined twice"),
        (
            "policy: {price: cheap}\ntiers: []\n",
            "policy: price: Input should be 'on_demand' or 'spot'",
        ),
        ("tiers:\n  - name: cpu_x\n", "memory: Field required"),
    ],
)
def test_invalid_tier_file_is_explained(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_tier_file(write(tmp_path, text))
    assert expected in str(caught.value)


def test_missing_tier_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REDTIER_TIERS"):
        load_tiers(tmp_path / "absent.yaml")


def test_tier_file_comes_from_flag_then_environment(tmp_path: Path) -> None:
    assert resolve_tiers_file(None, environ={}) is None
    assert resolve_tiers_file(None, environ={"REDTIER_TIERS": "/x/t.yaml"}) == Path("/x/t.yaml")
    assert resolve_tiers_file("/y/t.yaml", environ={"REDTIER_TIERS": "/x/t.yaml"}) == Path(
        "/y/t.yaml"
    )


def test_unknown_tier_suggests_close_names() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: gpu_small"):
        load_tiers().get("gpu_smal")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2048, 2048),
        ("2 GiB", 2 * GiB),
        ("24 GB", 24 * 1000**3),
        ("15360 MiB", 15360 * 1024**2),
        ("1.5KiB", 1536),
    ],
)
def test_sizes_parse_with_units(value: object, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["2 GiBs", "-1 GB", True, None, "lots"])
def test_bad_sizes_are_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(value)
