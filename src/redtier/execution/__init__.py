"""Code evaluation: run code that a model wrote in a sandbox and report what it tried to do.

:func:`run_code` runs one piece of Python or shell in a sandbox backend
(:mod:`redtier.sandbox`) and returns an :class:`ExecutionReport`: exit status,
signal, timeout and limits hit, seen from outside, and the attempts the code
made, recorded from inside:

- Python runs under ``sys.addaudithook`` (``_audit_runner.py``), which logs
  network connections, files opened outside the working folder, processes
  started, signals sent, deletions, native libraries and sensitive imports.
- Shell runs under ``bash -x`` with a ``PS4`` that also records the unexpanded
  command, so redirections show as well as the expanded words.

The inside records are written by the code's own process, so code that
tampers with them can hide or fake entries. The report's notes mention a log
that was cut short, altered or missing.

:func:`run_evaluation` adds static analysis and a malicious-code verdict, and
:class:`SandboxExecutor` lets :class:`redtier.detectors.MaliciousCodeDetector`
run the code blocks of a model output as evidence.
"""

from redtier.execution._evaluate import Evaluation, run_evaluation
from redtier.execution._executor import DETECTOR_LIMITS, SandboxExecutor
from redtier.execution._report import ExecutionReport, Language, ObservedBehaviour
from redtier.execution._run import DEFAULT_LIMITS, resolve_language, run_code

__all__ = [
    "DEFAULT_LIMITS",
    "DETECTOR_LIMITS",
    "Evaluation",
    "ExecutionReport",
    "Language",
    "ObservedBehaviour",
    "SandboxExecutor",
    "resolve_language",
    "run_code",
    "run_evaluation",
]
