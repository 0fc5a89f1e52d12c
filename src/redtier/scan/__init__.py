"""The scan harness: plan attempts, generate, judge and store them."""

from redtier.scan._loading import NO_SANDBOX, check_model_sandbox, load_backend
from redtier.scan._options import DEFAULT_TRANSFORMS, ScanOptions
from redtier.scan._plan import build_plan, clean_text, make_canary
from redtier.scan._runner import ScanOutcome, StopScan, execute_scan, run_facts, select_probes
from redtier.scan._session import (
    PreparedScan,
    check_same_weights,
    pin_prompt_files,
    prepare_scan,
    run_prepared,
)

__all__ = [
    "DEFAULT_TRANSFORMS",
    "NO_SANDBOX",
    "PreparedScan",
    "ScanOptions",
    "ScanOutcome",
    "StopScan",
    "build_plan",
    "check_model_sandbox",
    "check_same_weights",
    "clean_text",
    "execute_scan",
    "load_backend",
    "make_canary",
    "pin_prompt_files",
    "prepare_scan",
    "run_prepared",
    "run_facts",
    "select_probes",
]
