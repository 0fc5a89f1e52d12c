"""Run one piece of untrusted code in a sandbox and report what it tried to do."""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Literal

from redtier.detectors._code_extract import guess_language
from redtier.errors import ConfigError, SandboxError
from redtier.execution._audit_log import AuditContext, audit_behaviours, parse_audit_log
from redtier.execution._audit_runner import NOT_COMPILED
from redtier.execution._outside import limits_hit_with_shell, outside_behaviours
from redtier.execution._report import ExecutionReport, Language, ObservedBehaviour
from redtier.execution._shell_trace import (
    Trace,
    TraceContext,
    bash_init,
    parse_trace,
    trace_behaviours,
)
from redtier.sandbox import Limits, MiB, Sandbox, SandboxRun, get_sandbox, make_workdir

logger = logging.getLogger(__name__)

RUNNER = Path(__file__).resolve().with_name("_audit_runner.py")
"""The script that executes Python code under the audit hook, inside the sandbox."""
DEFAULT_LIMITS = Limits(
    memory_bytes=512 * MiB,
    cpu_seconds=10,
    max_processes=32,
    file_size_bytes=16 * MiB,
    wall_timeout_s=10.0,
    tmp_size_bytes=32 * MiB,
    max_output_bytes=1 * MiB,
)
"""Limits for code that a model wrote: enough for a script in a model's reply, not for a bomb."""
SHELL = "/bin/bash"
CODE_FILES: dict[Language, str] = {"python": "main.py", "shell": "main.sh"}
AUDIT_LOG = ".redtier-audit.jsonl"
BASH_INIT_FILE = ".redtier-bash-init.sh"
SHELL_TRACE = ".redtier-trace.log"
MAX_LOG_BYTES = 1 * MiB
"""Bytes of the audit log read back; the runner itself stops writing at 256 KiB."""
MAX_TRACE_BYTES = 2 * MiB
"""Bytes of the shell trace read back; bash writes up to ``Limits.file_size_bytes``."""
EXCERPT_CHARS = 4000
MAX_BEHAVIOURS = 100
MAX_DETAIL_CHARS = 500
SHEBANG = re.compile(r"^#!\s*\S*?(?:/env\s+)?(?P<name>[\w.-]+)")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def run_code(
    code: str,
    *,
    language: Literal["python", "shell", "auto"] = "auto",
    sandbox: str | Sandbox = "auto",
    limits: Limits | None = None,
) -> ExecutionReport:
    """Run ``code`` in a sandbox and report what it tried to do and how it ended.

    The code is written to a fresh working folder, which is its current
    folder and the only place it may write, and deleted afterwards. Python
    runs under an audit hook and shell under ``bash -x`` (see
    :mod:`redtier.execution`), with ``limits`` (:data:`DEFAULT_LIMITS` by
    default) set before it starts.

    Raises:
        ConfigError: ``language`` is not ``python``, ``shell`` or ``auto``, or
            ``auto`` cannot tell which of the two the code is.
        UnknownNameError: ``sandbox`` names no registered backend.
        SandboxError: the backend is not available here, or failed to start.
    """
    chosen = resolve_language(code, language)
    box = _usable(sandbox)
    limits = limits or DEFAULT_LIMITS
    workdir = Path(os.path.realpath(make_workdir(box, prefix="redtier-exec-")))
    try:
        run, log_text, log_problem = _run_in(box, chosen, code, workdir, limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _report(box, chosen, limits, run, str(workdir), log_text, log_problem)


def _usable(sandbox: str | Sandbox) -> Sandbox:
    """Return the backend ``sandbox`` names, or the one given, once it is known to work here."""
    if not isinstance(sandbox, Sandbox):
        return get_sandbox(sandbox)
    availability = sandbox.availability()
    if not availability.ok:
        raise SandboxError(
            f"The {sandbox.name} sandbox is not available: {availability.problem}. Fix: {availability.fix}."
        )
    return sandbox


def resolve_language(code: str, language: str) -> Language:
    """Return ``language``, or for ``auto`` the language a shebang names or the code looks like."""
    if language in ("python", "shell"):
        return language  # type: ignore[return-value]
    if language != "auto":
        raise ConfigError(f"Unknown language {language!r}: use auto, python or shell.")
    shebang = SHEBANG.match(code)
    if shebang:
        name = shebang.group("name")
        if name.startswith("python"):
            return "python"
        if name in ("sh", "bash", "dash", "zsh", "ksh"):
            return "shell"
    guessed = guess_language(code)
    if guessed in ("python", "shell"):
        return guessed  # type: ignore[return-value]
    raise ConfigError(
        "Cannot tell whether the code is Python or shell. Pass language='python' or "
        "language='shell' (on the command line: --language python or --language shell)."
    )


def _run_in(
    box: Sandbox, language: Language, code: str, workdir: Path, limits: Limits
) -> tuple[SandboxRun, str, str | None]:
    """Write the code and its start-up files into ``workdir``, run it, and read back its log or trace."""
    code_path = workdir / CODE_FILES[language]
    code_path.write_text(code, encoding="utf-8")
    if language == "python":
        argv = [
            box.python_executable(), "-I", "-B", str(RUNNER),
            "--events", str(workdir / AUDIT_LOG), "--workdir", str(workdir), str(code_path),
        ]  # fmt: skip
        env: dict[str, str] = {}
    else:
        init = workdir / BASH_INIT_FILE
        init.write_text(bash_init(str(workdir / SHELL_TRACE)), encoding="utf-8")
        argv = [SHELL, str(code_path)]
        env = {"BASH_ENV": str(init)}
    logger.info("Running %s code in the %s sandbox in %s", language, box.name, workdir)
    run = box.run(argv, limits=limits, binds=[RUNNER.parent], writable=workdir, env=env)
    if language == "python":
        log_text, problem = read_untrusted_file(workdir, AUDIT_LOG, MAX_LOG_BYTES)
    else:
        log_text, problem = read_untrusted_file(workdir, SHELL_TRACE, MAX_TRACE_BYTES)
    return run, log_text, problem


def read_untrusted_file(folder: Path, name: str, limit: int) -> tuple[str, str | None]:
    """Read at most ``limit`` bytes of ``folder/name``, a file the sandboxed code could replace.

    It is opened relative to the folder without following a symlink and
    without blocking on a FIFO, and read only when it is a regular file, so
    the code cannot make the host read another file or hang. Returns the text
    and None, or an empty text and why it could not be read.
    """
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        return "", f"its folder could not be opened ({error.strerror})"
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder_fd
        )
    except FileNotFoundError:
        return "", "it is missing"
    except OSError as error:
        return "", f"it could not be opened ({error.strerror})"
    finally:
        os.close(folder_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "", "it is not a regular file"
        chunks: list[bytes] = []
        remaining = limit
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 64 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace"), None


def _report(
    box: Sandbox,
    language: Language,
    limits: Limits,
    run: SandboxRun,
    workdir: str,
    log_text: str,
    log_problem: str | None,
) -> ExecutionReport:
    host_namespace = _pid_namespace()
    limits_hit = limits_hit_with_shell(run.limits_hit, run.stderr)
    if language == "python":
        log = parse_audit_log(log_text)
        behaviours = audit_behaviours(log, AuditContext(workdir, host_namespace))
        notes = _audit_notes(log_problem, bool(log.start), log.truncated, log.invalid_lines)
        if not log.start and (compile_error := _compile_error(run.stderr)) is not None:
            notes = [compile_error if note.startswith(NO_START_RECORD) else note for note in notes]
        if log.process_limit_reached and "processes" not in limits_hit:
            limits_hit = (*limits_hit, "processes")
    else:
        trace = parse_trace(log_text, run.stderr, str(Path(workdir) / CODE_FILES["shell"]))
        behaviours = trace_behaviours(trace, TraceContext(workdir, host_namespace))
        notes = _trace_notes(log_problem, log_text, trace)
    behaviours += outside_behaviours(run, limits, limits_hit)
    unique = _unique(behaviours)
    if len(unique) > MAX_BEHAVIOURS:
        notes.append(f"{len(unique) - MAX_BEHAVIOURS} more behaviours were left out")

    return ExecutionReport(
        language=language,
        sandbox=box.name,
        isolation=box.describe(),
        limits=limits,
        exit_code=run.exit_code,
        signal=run.signal,
        timed_out=run.timed_out,
        limits_hit=limits_hit,
        wall_s=run.wall_s,
        stdout=excerpt(run.stdout),
        stderr=excerpt(run.stderr),
        behaviours=tuple(unique[:MAX_BEHAVIOURS]),
        notes=tuple(notes),
    )


def _trace_notes(problem: str | None, text: str, trace: Trace) -> list[str]:
    notes: list[str] = []
    if problem is not None:
        notes.append(f"the shell trace could not be read: {problem}")
    elif not trace.starts:
        notes.append(
            "the shell trace has no start line: bash failed, or the script rewrote the trace"
        )
    if trace.cut_short or len(text.encode("utf-8", "replace")) >= MAX_TRACE_BYTES:
        notes.append("the shell trace reached its size cap; later commands are not shown")
    return notes


NO_START_RECORD = "the audit log has no start record"


def _audit_notes(problem: str | None, started: bool, truncated: bool, invalid: int) -> list[str]:
    notes: list[str] = []
    if problem is not None:
        notes.append(f"the audit log could not be read: {problem}")
    elif not started:
        notes.append(f"{NO_START_RECORD}: the runner failed, or the code rewrote the log")
    if truncated:
        notes.append("the audit log reached its size cap; later attempts are not shown")
    if invalid:
        notes.append(
            f"{invalid} lines of the audit log were not records (cut short or written by the code)"
        )
    return notes


def _compile_error(stderr: str) -> str | None:
    """Return a note on the code's syntax error when the runner reported one, else None."""
    for line in stderr.splitlines():
        if line.startswith(NOT_COMPILED):
            return "the code did not compile: " + line.removeprefix(NOT_COMPILED)
    return None


def _unique(behaviours: list[ObservedBehaviour]) -> list[ObservedBehaviour]:
    """Merge repeats of the same behaviour and detail; a repeat that got through makes it not blocked."""
    merged: dict[tuple[str, str], ObservedBehaviour] = {}
    for item in behaviours:
        item = item.model_copy(update={"detail": escape_controls(item.detail)[:MAX_DETAIL_CHARS]})
        key = (item.behaviour.value, item.detail)
        if key not in merged:
            merged[key] = item
        elif merged[key].blocked and not item.blocked:
            merged[key] = merged[key].model_copy(update={"blocked": False})
    return sorted(merged.values(), key=lambda item: not item.strong)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Return ``text`` with control characters escaped, cut in the middle when longer than ``limit``."""
    text = escape_controls(text)
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 3 // 4], text[-limit // 4 :]
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters left out ...]\n{tail}"


def escape_controls(text: str) -> str:
    """Write control characters other than newline and tab as ``\\xNN``, so no terminal acts on them."""
    return CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
