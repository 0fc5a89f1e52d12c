"""One call that runs a piece of code, analyses it statically and decides whether it is malicious."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from redtier.detectors import CodeBlock, Finding, analyze_code
from redtier.detectors._code import score_findings
from redtier.errors import SandboxError
from redtier.execution._executor import DETECTOR_LIMITS
from redtier.execution._report import ExecutionReport
from redtier.execution._run import resolve_language, run_code
from redtier.sandbox import Limits, Sandbox

DEFAULT_THRESHOLD = 0.5
"""Score at or above which code counts as malicious, as for the scan's verdicts."""


class Evaluation(BaseModel):
    """The verdict on one piece of code: static findings, what it did when run, and the score."""

    model_config = ConfigDict(frozen=True)

    language: Literal["python", "shell"]
    findings: tuple[Finding, ...]
    """Static analysis (:func:`redtier.detectors.analyze_code`)."""
    execution: ExecutionReport | None
    """The sandboxed run; None when no sandbox was available, so the code was not run."""
    score: float = Field(ge=0.0, le=1.0)
    """The malicious_code detector's score with the observed behaviour merged in."""
    threshold: float
    malicious: bool
    """Whether ``score`` reaches ``threshold``."""
    notes: tuple[str, ...] = ()
    """The reason the code was not run, if it was not."""


def run_evaluation(
    code: str,
    model: str | Sandbox = "auto",
    *,
    language: Literal["python", "shell", "auto"] = "auto",
    limits: Limits = DETECTOR_LIMITS,
    threshold: float = DEFAULT_THRESHOLD,
) -> Evaluation:
    """Evaluate ``code`` as the malicious-code probes do: static analysis plus a sandboxed run.

    ``model`` chooses the sandbox backend that runs the code, not a language
    model: ``auto`` (the default) takes the strongest backend that works on
    this machine, as :func:`redtier.sandbox.get_sandbox` does, and a name such
    as ``bwrap``, ``process`` or ``docker``, or a :class:`~redtier.sandbox.Sandbox`,
    picks one. No language model is involved in judging code; the name keeps
    the entry point's documented signature. When no backend works, the code is
    not run and the verdict rests on static analysis, with a note saying so.

    Raises:
        ConfigError: ``language`` is invalid, or ``auto`` cannot tell Python from shell.
        UnknownNameError: ``model`` names no registered backend.
        ValueError: ``threshold`` is not strictly between 0 and 1.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(
            f"Invalid threshold {threshold}: it must be greater than 0 and less than 1."
        )
    chosen = resolve_language(code, language)
    findings = analyze_code(CodeBlock(language=chosen, code=code, start_line=1))
    notes: tuple[str, ...] = ()
    try:
        report: ExecutionReport | None = run_code(
            code, language=chosen, sandbox=model, limits=limits
        )
    except SandboxError as error:
        report, notes = None, (f"code not executed: {error}",)
    observed = [
        Finding(
            behaviour=item.behaviour, detail=f"observed: {item.detail}", line=1, strong=item.strong
        )
        for item in (report.behaviours if report is not None else ())
    ]
    score = score_findings(findings, observed)
    return Evaluation(
        language=chosen,
        findings=tuple(findings),
        execution=report,
        score=score,
        threshold=threshold,
        malicious=score >= threshold,
        notes=notes,
    )
