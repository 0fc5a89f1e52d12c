"""Run the code blocks of a model output for the malicious-code detector, always in a sandbox."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redtier.detectors import CodeBlock, Finding
from redtier.detectors._code import ExecutionEvidence
from redtier.errors import RedtierError
from redtier.execution._report import ObservedBehaviour
from redtier.execution._run import run_code
from redtier.sandbox import Limits, MiB, Sandbox, get_sandbox

logger = logging.getLogger(__name__)

DETECTOR_LIMITS = Limits(
    memory_bytes=256 * MiB,
    cpu_seconds=5,
    max_processes=32,
    file_size_bytes=8 * MiB,
    wall_timeout_s=5.0,
    tmp_size_bytes=16 * MiB,
    max_output_bytes=256 * 1024,
)
"""Limits for each block a scan runs: a few seconds and a small memory cap, so a scan stays fast."""
DEFAULT_MAX_BLOCKS = 3
MAX_OBSERVED_LINES = 6
RUNNABLE = ("python", "shell")
KIND_ORDER = {"fenced": 0, "unfenced": 1, "inline": 2}
"""Fenced blocks run first: they are most often the complete program the output offers."""


class SandboxExecutor:
    """Runs up to ``max_blocks`` Python or shell blocks of an output, each in a fresh sandbox.

    ``sandbox`` is a backend name (``auto``: the strongest that works here)
    or a :class:`~redtier.sandbox.Sandbox`. It is resolved on first use; when
    no backend works, no block is run and the evidence gives the reason. Code never
    runs outside a sandbox.
    """

    def __init__(
        self,
        sandbox: str | Sandbox = "auto",
        *,
        limits: Limits = DETECTOR_LIMITS,
        max_blocks: int = DEFAULT_MAX_BLOCKS,
    ) -> None:
        if max_blocks < 1:
            raise ValueError(f"Invalid max_blocks {max_blocks}: it must be at least 1.")
        self.requested = sandbox
        self.limits = limits
        self.max_blocks = max_blocks
        self._sandbox: Sandbox | None = None
        self._unavailable: str | None = None

    def sandbox(self) -> Sandbox | None:
        """Return the backend, resolving it once; None when it is not available here."""
        if self._sandbox is None and self._unavailable is None:
            try:
                candidate = (
                    self.requested
                    if isinstance(self.requested, Sandbox)
                    else get_sandbox(self.requested)
                )
                availability = candidate.availability()
                if availability.ok:
                    self._sandbox = candidate
                else:
                    self._unavailable = f"{availability.problem} (fix: {availability.fix})"
            except RedtierError as error:
                self._unavailable = str(error)
            if self._unavailable is not None:
                logger.warning("Model-written code will not be run: %s", self._unavailable)
        return self._sandbox

    def observe(self, blocks: Sequence[CodeBlock]) -> ExecutionEvidence:
        """Run the first runnable blocks and return their behaviours as findings and evidence lines."""
        runnable = sorted(
            (block for block in blocks if block.language in RUNNABLE),
            key=lambda block: (KIND_ORDER.get(block.kind, 3), block.start_line),
        )[: self.max_blocks]
        if not runnable:
            return ExecutionEvidence(evidence=("code not executed: no Python or shell block",))
        sandbox = self.sandbox()
        if sandbox is None:
            return ExecutionEvidence(
                evidence=(f"code not executed: no sandbox available: {self._unavailable}",)
            )

        findings: list[Finding] = []
        lines: list[str] = []
        executed = 0
        for block in runnable:
            try:
                language = "python" if block.language == "python" else "shell"
                report = run_code(
                    block.code, language=language, sandbox=sandbox, limits=self.limits
                )
            except RedtierError as error:
                logger.warning("Running the block at line %d failed: %s", block.start_line, error)
                lines.append(f"code at line {block.start_line} not executed: {error}")
                continue
            executed += 1
            findings.extend(_finding(item, block) for item in report.behaviours)
            lines.extend(f"observed {item.line()}" for item in report.behaviours)
            lines.extend(
                f"note on the code at line {block.start_line}: {note}" for note in report.notes
            )

        summary = f"executed {executed} code block(s) in the {sandbox.name} sandbox"
        if not lines:
            summary += ": no behaviour observed"
        listed = lines[:MAX_OBSERVED_LINES]
        if len(lines) > len(listed):
            listed.append(f"and {len(lines) - len(listed)} more lines of execution evidence")
        return ExecutionEvidence(findings=tuple(findings), evidence=(summary, *listed))


def _finding(item: ObservedBehaviour, block: CodeBlock) -> Finding:
    return Finding(
        behaviour=item.behaviour,
        detail=f"observed: {item.detail}",
        line=block.start_line,
        strong=item.strong,
    )
