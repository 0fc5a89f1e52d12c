"""`redtier exec`: run a Python or shell file in the sandbox and show what it tried to do."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from redtier.cli._common import console, print_json
from redtier.errors import ConfigError
from redtier.execution import DEFAULT_LIMITS, ExecutionReport, resolve_language, run_code

LANGUAGES_BY_SUFFIX = {".py": "python", ".sh": "shell", ".bash": "shell"}
MAX_FILE_BYTES = 1024 * 1024
MAX_TIMEOUT_S = 24 * 3600.0
"""Longest --timeout: a day. Without a bound, inf would turn the wall timeout off."""


def exec_file(
    file: Annotated[Path, typer.Argument(help="Python or shell file to run in the sandbox.")],
    language: Annotated[str, typer.Option(help="Language of FILE: auto (from the extension, a shebang or the code), python or shell.")] = "auto",
    sandbox: Annotated[str, typer.Option(help="Sandbox backend: auto (the strongest that works here), bwrap, process or docker.")] = "auto",
    timeout: Annotated[float, typer.Option(help="Wall-clock limit in seconds, after which the whole process tree is killed.", min=0.1, max=MAX_TIMEOUT_S)] = DEFAULT_LIMITS.wall_timeout_s,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table.")] = False,
) -> None:
    """Run FILE in the sandbox and show what it tried to do: connections, files, processes, signals, limits.

    Exits with status 0 whenever the file ran, whatever it did, and 2 when
    the file or an option is invalid or no sandbox works here.
    """
    if sandbox == "none":
        raise ConfigError(
            "redtier exec always runs code in a sandbox, so --sandbox none is not offered here "
            "(it is a scan option, for models only). Use auto, bwrap, process or docker."
        )
    code = _read_code(file)
    if language == "auto" and file.suffix in LANGUAGES_BY_SUFFIX:
        language = LANGUAGES_BY_SUFFIX[file.suffix]
    chosen = resolve_language(code, language)
    limits = DEFAULT_LIMITS.model_copy(update={"wall_timeout_s": timeout})
    report = run_code(code, language=chosen, sandbox=sandbox, limits=limits)
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    _print_report(file, report)


def _read_code(file: Path) -> str:
    if not file.is_file():
        raise ConfigError(f"File {file} not found, or it is not a regular file.")
    if file.stat().st_size > MAX_FILE_BYTES:
        raise ConfigError(f"File {file} is larger than {MAX_FILE_BYTES // 1024} KiB; pass a script, not data.")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"File {file} is not UTF-8 text ({error.reason}).") from error


def _print_report(file: Path, report: ExecutionReport) -> None:
    console.print(Text(f"{file} ({report.language}) in {report.isolation}"))
    if report.behaviours:
        console.print(behaviour_table(report))
    else:
        console.print("It tried nothing that the audit or trace records.")
    outcome = Text(f"Outcome: {report.outcome()} after {report.wall_s:.2f} s")
    if report.limits_hit:
        outcome.append(f"; limits hit: {', '.join(report.limits_hit)}")
    console.print(outcome)
    for note in report.notes:
        console.print(Text(f"Note: {note}", style="yellow"))
    for name, text in (("stdout", report.stdout), ("stderr", report.stderr)):
        if text.strip():
            console.print(Text(f"{name}:", style="bold"))
            console.print(Text(text.rstrip(), style="dim"))
    console.print(Text(report.summary(), style="bold"))


def behaviour_table(report: ExecutionReport) -> Table:
    """Return a table of the report's behaviours, strong ones first."""
    table = Table(title="What the code tried to do")
    for column in ("Behaviour", "Detail", "Outcome", "Seen by", "Strength"):
        table.add_column(column, overflow="fold")
    for item in report.behaviours:
        outcome = Text(item.outcome, style="green" if item.blocked else "red")
        table.add_row(
            Text(item.behaviour.value),
            Text(item.detail),
            outcome,
            Text(item.source),
            Text("strong" if item.strong else "weak"),
        )
    return table
