"""The scan harness: plan attempts, generate, judge and store them."""

from redtier.scan._options import DEFAULT_TRANSFORMS, ScanOptions
from redtier.scan._plan import build_plan, clean_text, make_canary
from redtier.scan._runner import ScanOutcome, execute_scan, run_facts, select_probes

__all__ = [
    "DEFAULT_TRANSFORMS",
    "ScanOptions",
    "ScanOutcome",
    "build_plan",
    "clean_text",
    "execute_scan",
    "make_canary",
    "run_facts",
    "select_probes",
]
