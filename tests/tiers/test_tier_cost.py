"""Cost: estimate arithmetic, budget checks, and a budget stop that keeps partial results."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from redtier.backends import ScriptedBackend
from redtier.catalog import DEFAULT_MODEL, Precision, load_catalog
from redtier.cli._plan import cost_line, price_scan
from redtier.sandbox import Limits
from redtier.scan import ScanOptions, prepare_scan, run_prepared
from redtier.settings import Settings
from redtier.store import AttemptRow, Store
from redtier.tiers import (
    STOPPED_BUDGET,
    BudgetError,
    CostMeter,
    JobLimits,
    PriceKind,
    ScanShape,
    check_budget,
    fit_tier,
    load_tiers,
    machine_has_gpu,
    remaining_fit,
)


class FakeClock:
    """A monotonic clock that tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_estimate_adds_load_to_generation() -> None:
    tiers = load_tiers()
    shape = ScanShape(attempts=300, longest_prompt_tokens=100, max_new_tokens=128, batch_size=32)
    tier = tiers.get("cpu_small")
    fit = fit_tier(load_catalog().get(DEFAULT_MODEL), tier, shape)
    speed = 100 * 135_000_000 / 134_515_008
    # Start 3 s, then 4 bytes per parameter of fp32 weights at 1 GB/s.
    assert fit.load_seconds == pytest.approx(3 + 134_515_008 * 4 / 1e9)
    assert fit.seconds == pytest.approx(fit.load_seconds + 300 * 128 / speed)
    assert fit.seconds_per_attempt == pytest.approx(128 / speed)
    assert fit.cost_usd == pytest.approx(fit.seconds / 3600 * 0.085)

    spot = fit_tier(load_catalog().get(DEFAULT_MODEL), tier, shape, price=PriceKind.SPOT)
    assert spot.cost_usd == pytest.approx(fit.seconds / 3600 * 0.035)


def test_resumed_estimate_pays_the_load_again() -> None:
    shape = ScanShape(attempts=300, longest_prompt_tokens=100, max_new_tokens=128, batch_size=32)
    fit = fit_tier(load_catalog().get(DEFAULT_MODEL), load_tiers().get("cpu_small"), shape)
    assert fit.seconds is not None
    assert fit.load_seconds is not None
    quarter = remaining_fit(fit, 0.25)
    generation = fit.seconds - fit.load_seconds
    assert quarter.seconds == pytest.approx(fit.load_seconds + generation / 4)
    assert quarter.cost_usd == pytest.approx(quarter.seconds / 3600 * 0.085)
    assert remaining_fit(fit, 0.0).seconds == pytest.approx(fit.load_seconds)


def test_smaller_batches_are_estimated_slower() -> None:
    throughput = load_tiers().get("cpu_small").throughput
    entry = load_catalog().get(DEFAULT_MODEL)
    full = throughput.tokens_per_s_for(entry, 32)
    assert throughput.tokens_per_s_for(entry) == full
    assert throughput.tokens_per_s_for(entry, 64) == full, (
        "more rows than the reference gain nothing"
    )
    # One prompt at a time ran 7.9 times slower than 32 rows in the throughput benchmark.
    assert full / throughput.tokens_per_s_for(entry, 1) == pytest.approx(8.0, rel=0.01)
    shape = ScanShape(attempts=300, longest_prompt_tokens=100, max_new_tokens=128, batch_size=1)
    tier = load_tiers().get("cpu_small")
    slow = fit_tier(entry, tier, shape)
    assert slow.load_seconds is not None
    generation = 300 * 128 / (full / 8.0)
    assert slow.seconds == pytest.approx(slow.load_seconds + generation, rel=0.01)


def test_speed_scaling_cap_and_measured(tmp_path: Path) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(
        "tiers:\n  - name: cpu_small\n    accelerator: none\n    memory: 2 GiB\n    attempt_timeout_s: 60\n"
        "    instance_type: c6i.large\n    price_usd_per_hour: {on_demand: 0.085}\n"
        "    throughput: {tokens_per_s: 20, reference_params: 135M, max_tokens_per_s: 30, "
        "measured: {gpt2: 12.5}}\n",
        encoding="utf-8",
    )
    throughput = load_tiers(path).get("cpu_small").throughput
    catalog = load_catalog()
    assert throughput.tokens_per_s_for(catalog.get("llama-3.2-1b")) == pytest.approx(
        20 * 135e6 / 1_235_814_400
    )
    assert throughput.tokens_per_s_for(catalog.get("distilgpt2")) == 30
    assert throughput.tokens_per_s_for(catalog.get("gpt2")) == 12.5
    assert throughput.source_for(catalog.get("gpt2")) == "measured"


def test_budget_below_estimate_is_rejected_with_a_limit() -> None:
    shape = ScanShape(attempts=300, longest_prompt_tokens=100, max_new_tokens=128, batch_size=32)
    fit = fit_tier(load_catalog().get(DEFAULT_MODEL), load_tiers().get("cpu_small"), shape)
    assert fit.cost_usd is not None
    check_budget(fit, shape.attempts, None)
    check_budget(fit, shape.attempts, fit.cost_usd * 1.01)
    budget = fit.cost_usd / 3
    with pytest.raises(BudgetError) as caught:
        check_budget(fit, shape.attempts, budget)
    assert fit.load_seconds is not None
    load_usd = fit.load_seconds / 3600 * 0.085
    affordable = math.floor((budget - load_usd) / ((fit.cost_usd - load_usd) / 300))
    assert f"--limit {affordable} keeps the estimate within it" in str(caught.value)
    assert 97 <= affordable <= 99, "the load is paid once, so a third of the budget runs under 100"


def test_budget_stop_keeps_partial_results(store: Store, model_cache: Path) -> None:
    settings = Settings(db_url=store.url, cache_dir=model_cache)
    options = ScanOptions(model=DEFAULT_MODEL, limit=12, tier="cpu_small", budget_usd=0.01)
    prepared = prepare_scan(settings, store, options)
    fit = fit_tier(
        prepared.entry, load_tiers().get("cpu_small"), ScanShape.from_plan(prepared.plan, options)
    )
    clock = FakeClock()

    meter = CostMeter(store, fit, price_kind=PriceKind.ON_DEMAND, budget_usd=0.01, clock=clock)

    def slow_attempt(row: AttemptRow) -> None:
        clock.now += 100.0  # each stored attempt took 100 s
        meter.on_attempt(row)

    outcome = run_prepared(
        store,
        prepared,
        ScriptedBackend("I can't help with that."),
        on_start=lambda run, _remaining: meter.attach(run.id),
        on_attempt=slow_attempt,
    )
    meter.finish()

    # 0.01 USD at 0.085 USD/h buys 423.5 s, so the fifth attempt (500 s) passes the budget.
    assert outcome.stopped is not None
    assert outcome.stopped.status == STOPPED_BUDGET
    assert outcome.stored == 5
    run = store.get_run(outcome.run_id)
    assert run.status == STOPPED_BUDGET
    assert "budget" in (run.error or "")
    assert store.count_attempts(run.id) == 5
    cost = store.get_cost(run.id)
    assert cost is not None
    assert cost.wall_s == pytest.approx(500.0)
    assert cost.cost_usd == pytest.approx(500 / 3600 * 0.085)
    assert cost.budget_usd == 0.01
    assert cost.estimated_usd == pytest.approx(fit.cost_usd)
    assert cost.tokens_out == 5 * 5

    resumed = prepare_scan(settings, store, resume=run.id)
    again = CostMeter(store, fit, price_kind=PriceKind.ON_DEMAND, budget_usd=0.01, clock=clock)

    def slow_again(row: AttemptRow) -> None:
        clock.now += 100.0
        again.on_attempt(row)

    second = run_prepared(
        store,
        resumed,
        ScriptedBackend("I can't help with that."),
        on_start=lambda run, _remaining: again.attach(run.id),
        on_attempt=slow_again,
    )
    again.finish()
    assert second.stored == 1, "the earlier session's spend counts against the same budget"
    assert store.get_cost(run.id).wall_s == pytest.approx(600.0)


def test_scan_refuses_budget_below_estimate(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "REDTIER_DB": str(tmp_path / "r.db")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "redtier",
            "scan",
            "--max-new-tokens",
            "256",
            "--budget",
            "0.01",
            "--tier",
            "cpu_small",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    message = " ".join(result.stderr.split())
    assert result.returncode == 2
    assert "over the --budget of $0.0100" in message
    # (0.01 $ at 0.085 $/h is 423.5 s) less a 3.5 s load, over 2.55 s per attempt.
    assert "--limit 164 keeps the estimate within it" in message
    assert "Traceback" not in message


@pytest.mark.model
def test_scan_on_a_tier_stores_measured_cost(tmp_path: Path, model_cache: Path) -> None:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "REDTIER_DB": str(tmp_path / "r.db"),
        "REDTIER_CACHE_DIR": str(model_cache),
        "HF_HUB_OFFLINE": "1",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "redtier",
            "scan",
            "--limit",
            "2",
            "--max-new-tokens",
            "4",
            "--tier",
            "cpu_small",
            "--sandbox",
            "none",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    cost = json.loads(result.stdout)["cost"]
    assert cost["tier"] == "cpu_small"
    assert cost["instance_type"] == "c6i.large"
    assert cost["wall_s"] > 0
    assert cost["cost_usd"] == pytest.approx(cost["wall_s"] / 3600 * 0.085)
    assert cost["estimated_usd"] > 0
    assert cost["precision"] == "fp32"

    def redtier(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "redtier", *args]
        return subprocess.run(
            command, env={**env, "COLUMNS": "200"}, capture_output=True, text=True, check=False
        )

    [listed] = json.loads(redtier("runs", "--json").stdout)
    assert listed["cost"]["cost_usd"] == pytest.approx(cost["cost_usd"])
    table = redtier("runs").stdout
    assert f"${cost['cost_usd']:.4f}" in table
    shown = redtier("show", listed["id"])
    assert shown.returncode == 0, shown.stderr
    assert "Cost on cpu_small (c6i.large" in shown.stdout


def test_job_limits_follow_the_tier() -> None:
    tier = load_tiers().get("cpu_small")
    limits = JobLimits.for_job(tier, attempts=10)
    assert limits.memory_bytes == 2 * 1024**3
    assert limits.attempt_timeout_s == 60
    assert limits.wall_timeout_s == 600 + 10 * 60
    assert limits.batch_timeout_s(32) == 60 * 32
    sandbox = limits.apply_to(Limits())
    assert (sandbox.memory_bytes, sandbox.wall_timeout_s) == (
        limits.memory_bytes,
        limits.wall_timeout_s,
    )
    assert sandbox.max_processes == Limits().max_processes
    assert sandbox.address_space_limit() == 4 * 2 * 1024**3 + 4 * 1024**3, (
        "RLIMIT_AS is padded above the tier's memory, which the cgroup enforces"
    )
    roomy = limits.apply_to(Limits(memory_bytes=20 * 1024**3))
    assert roomy.address_space_limit() == 20 * 1024**3, "a larger address space is kept"
    assert roomy.memory_bytes == 2 * 1024**3


def test_memory_estimate_parts_add_up() -> None:
    from redtier.catalog import Device, memory_breakdown

    entry = load_catalog().get("mistral-7b")
    gpu = memory_breakdown(entry, Precision.BF16, tokens=400, batch_size=32, device=Device.GPU)
    assert gpu.load_peak == 0
    assert gpu.total == gpu.runtime + gpu.weights + gpu.activations + gpu.kv_cache
    assert gpu.kv_cache == 2 * 32 * 8 * 128 * 2 * 400 * 32
    cpu = memory_breakdown(entry, Precision.FP32, tokens=400, batch_size=32)
    assert cpu.load_peak == cpu.runtime + entry.params * 2 + entry.params * 4
    assert cpu.total == cpu.load_peak


def _pricey_cpu_tier(path: Path, *, tokens_per_s: int = 100, instant_load: bool = False) -> Path:
    """Write a tier file whose cpu_small costs $36 an hour, one cent a second."""
    load = "    start_s: 0\n    load_gb_per_s: 1000\n" if instant_load else ""
    path.write_text(
        "tiers:\n"
        "  - name: cpu_small\n"
        "    accelerator: none\n"
        "    memory: 2 GiB\n"
        "    attempt_timeout_s: 60\n"
        "    instance_type: c6i.large\n"
        "    price_usd_per_hour: {on_demand: 36.0}\n"
        f"    throughput: {{tokens_per_s: {tokens_per_s}, reference_params: 135M}}\n" + load,
        encoding="utf-8",
    )
    return path


@pytest.mark.skipif(machine_has_gpu(), reason="this machine has a GPU, so a GPU tier may run here")
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--tier", "gpu_large"), "the scan would run on the CPU at GPU prices"),
        (("--model", "mistral-7b", "--budget", "5"), "mistral-7b needs a GPU tier"),
    ],
)
def test_scan_on_gpu_tier_refused_without_gpu(
    tmp_path: Path, flags: tuple[str, ...], expected: str
) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "REDTIER_DB": str(tmp_path / "r.db")}
    result = subprocess.run(
        [sys.executable, "-m", "redtier", "scan", "--limit", "2", *flags],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    message = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert expected in message
    assert "Loading" not in result.stdout


@pytest.mark.skipif(machine_has_gpu(), reason="this machine has a GPU, so a GPU tier may run here")
def test_budget_scan_routes_to_local_tier(
    store: Store, model_cache: Path, tmp_path: Path
) -> None:
    settings = Settings(db_url=store.url, cache_dir=model_cache)
    options = ScanOptions(model=DEFAULT_MODEL, limit=2, budget_usd=1.0)
    prepared = prepare_scan(settings, store, options)
    # cpu_small at a GPU tier's price: by hourly price alone, routing would pick gpu_small.
    tiers = load_tiers(_pricey_cpu_tier(tmp_path / "tiers.yaml"))
    _, meter = price_scan(store, prepared, tiers)
    assert meter is not None
    assert meter.tier == "cpu_small"


def test_resumed_run_keeps_earlier_spend_at_its_price(store: Store, model_cache: Path) -> None:
    settings = Settings(db_url=store.url, cache_dir=model_cache)
    options = ScanOptions(model=DEFAULT_MODEL, limit=4, tier="cpu_small")
    prepared = prepare_scan(settings, store, options)
    cheap = fit_tier(
        prepared.entry, load_tiers().get("cpu_small"), ScanShape.from_plan(prepared.plan, options)
    )
    pricey = cheap.model_copy(update={"price_per_hour_usd": 36.0})
    clock = FakeClock()
    first = CostMeter(store, pricey, price_kind=PriceKind.ON_DEMAND, clock=clock)

    def stop_after_two(row: AttemptRow) -> None:
        clock.now += 10.0
        if store.count_attempts(row.run_id) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_prepared(
            store,
            prepared,
            ScriptedBackend("I can't help with that."),
            on_start=lambda run, _remaining: first.attach(run.id),
            on_attempt=stop_after_two,
        )
    first.finish()
    run_id = store.list_runs()[0].id
    assert store.get_cost(run_id).cost_usd == pytest.approx(20 / 3600 * 36.0)

    second = CostMeter(store, cheap, price_kind=PriceKind.ON_DEMAND, clock=clock)
    second.attach(run_id)
    clock.now += 100.0
    second.finish()
    cost = store.get_cost(run_id)
    assert cost.wall_s == pytest.approx(120.0)
    assert cost.cost_usd == pytest.approx(20 / 3600 * 36.0 + 100 / 3600 * 0.085)
    assert "earlier sessions counted at the prices they ran at" in cost_line(cost)


@pytest.mark.model
def test_budget_stopped_scan_resumes_with_higher_budget(tmp_path: Path, model_cache: Path) -> None:
    # One cent a second, and an estimate near zero, so loading alone passes a 2-cent budget.
    tiers = _pricey_cpu_tier(tmp_path / "tiers.yaml", tokens_per_s=1_000_000, instant_load=True)
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "REDTIER_DB": str(tmp_path / "r.db"),
        "REDTIER_CACHE_DIR": str(model_cache),
        "REDTIER_TIERS": str(tiers),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "200",
    }

    def redtier(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "redtier", *args]
        return subprocess.run(
            command, env=env, capture_output=True, text=True, check=False, timeout=600
        )

    first = redtier(
        "scan", "--tier", "cpu_small", "--limit", "6", "--max-new-tokens", "4", "--budget", "0.02"
    )
    assert first.returncode == 3, first.stderr
    [run] = json.loads(redtier("runs", "--json").stdout)
    assert run["status"] == STOPPED_BUDGET
    assert f"redtier scan --resume {run['id']} --budget DOLLARS" in " ".join(first.stdout.split())
    spent = run["cost"]["cost_usd"]
    assert spent >= 0.02

    again = redtier("scan", "--resume", run["id"])
    assert again.returncode == 2
    assert "has already spent" in again.stderr

    report = redtier("show", run["id"])
    assert "Stopped: spent $" in " ".join(report.stdout.split())

    finished = redtier("scan", "--resume", run["id"], "--budget", "100")
    assert finished.returncode == 0, finished.stderr
    [run] = json.loads(redtier("runs", "--json").stdout)
    assert run["status"] == "completed"
    assert run["cost"]["cost_usd"] > spent, "the first session's spend is kept"
