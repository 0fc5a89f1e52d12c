"""Measure what the sandbox costs: process start-up and scan throughput.

Run from the repository root after scripts/setup:

    .venv/bin/python benchmarks/sandbox_overhead.py [--runs 30] [--attempts 64]

Start-up: median wall time of ``python -c pass`` run directly and through each
working sandbox backend. Throughput: the same greedy scan of the bundled model
with the model in this process (``--sandbox none``) and in each sandbox,
reported as generated tokens per second. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redtier.backends import ModelBackend
from redtier.catalog import DEFAULT_MODEL, load_catalog
from redtier.probes import load_library
from redtier.sandbox import SANDBOXES, Limits, get_sandbox, python_binds
from redtier.scan import ScanOptions, build_plan, execute_scan, load_backend
from redtier.settings import Settings
from redtier.store import Store


def startup_ms(runs: int) -> dict[str, float]:
    """Return the median start-up time of ``python -c pass`` per backend, in milliseconds."""
    results = {"no sandbox": _median_ms(runs, lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))}
    for name in SANDBOXES.names():
        sandbox = SANDBOXES.get(name)()
        if not sandbox.availability().ok:
            continue
        argv = [sandbox.python_executable(), "-c", "pass"]
        results[name] = _median_ms(runs, lambda: sandbox.run(argv, limits=Limits(), binds=python_binds()))
    return results


def _median_ms(runs: int, action) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def scan_tokens_per_second(sandbox: str, attempts: int, cache: Path) -> tuple[float, float]:
    """Return (generated tokens per second, load seconds) of one scan with the model in ``sandbox``."""
    settings = Settings(db_url=f"sqlite:///{cache / f'bench-{sandbox}.db'}", cache_dir=cache)
    options = ScanOptions(model=DEFAULT_MODEL, limit=attempts, max_new_tokens=64)
    plan = build_plan(load_library().select(None), options)
    started = time.perf_counter()
    backend: ModelBackend = load_backend(load_catalog().get(DEFAULT_MODEL), settings, sandbox=sandbox)
    loaded = time.perf_counter() - started
    store = Store(settings.db_url)
    run = store.create_run(DEFAULT_MODEL, options.model_dump(mode="json"), {}, len(plan))
    started = time.perf_counter()
    execute_scan(store, run.id, plan, backend, options)
    elapsed = time.perf_counter() - started
    backend.close()
    tokens = sum(row.tokens_out for row in store.iter_attempts(run.id))
    return tokens / elapsed, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="start-up samples per backend")
    parser.add_argument("--attempts", type=int, default=64, help="attempts in each throughput scan")
    args = parser.parse_args()

    print("| backend | start-up median (ms) |\n|---|---|")
    for name, value in startup_ms(args.runs).items():
        print(f"| {name} | {value:.0f} |")

    cache = Path(tempfile.mkdtemp(prefix="redtier-bench-"))
    cache.chmod(0o755)
    print("\n| model runs in | generated tokens/s | load (s) | vs no sandbox |\n|---|---|---|---|")
    baseline, loaded = scan_tokens_per_second("none", args.attempts, cache)
    print(f"| this process (--sandbox none) | {baseline:.1f} | {loaded:.1f} | 100% |")
    for name in ("bwrap", "process"):
        try:
            get_sandbox(name)
        except Exception as error:  # noqa: BLE001 - report and go on to the next backend
            print(f"| {name} | not available: {error} | | |")
            continue
        rate, loaded = scan_tokens_per_second(name, args.attempts, cache)
        print(f"| {name} sandbox | {rate:.1f} | {loaded:.1f} | {100 * rate / baseline:.0f}% |")


if __name__ == "__main__":
    main()
