"""The `doctor` command: which sandbox backends work here, what each isolates, and the fixes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from redtier.cli._common import console, print_json
from redtier.sandbox import AUTO_ORDER, SANDBOXES
from redtier.sandbox._check import BackendCheck, check_backend

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def doctor(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Check each sandbox backend by running `python -c 'print(1)'` in it. Exits with 1 if neither bwrap nor process works."""
    checks = [check_backend(SANDBOXES.get(name)()) for name in SANDBOXES]
    if as_json:
        print_json([check.model_dump(mode="json") for check in checks])
    else:
        console.print(_checks_table(checks))
        chosen = next(
            (check.backend for check in checks if check.works and check.backend in AUTO_ORDER), None
        )
        if chosen is not None:
            console.print(
                f"The automatic choice is the [bold]{chosen}[/bold] sandbox, "
                f"the first that works of {', '.join(AUTO_ORDER)}."
            )
    if not any(check.works for check in checks if check.backend in AUTO_ORDER):
        if not as_json:
            console.print(
                "[red]No local sandbox works, so redtier cannot run models or model-written code safely.[/red]"
            )
        raise typer.Exit(1)


def _checks_table(checks: list[BackendCheck]) -> Table:
    table = Table(title="Sandbox backends", show_lines=True)
    table.add_column("Backend", style="bold")
    table.add_column("Works")
    table.add_column("Isolates")
    table.add_column("Isolates less / problem")
    table.add_column("Fix")
    for check in checks:
        if check.works:
            status = (
                f"[green]yes[/green] ({check.start_s:.2f} s)"
                if check.start_s is not None
                else "[green]yes[/green]"
            )
        else:
            status = "[red]no[/red]"
        problems = [check.problem] if check.problem else list(check.gaps)
        table.add_row(
            check.backend, status, "\n".join(check.isolates), "\n".join(problems), check.fix
        )
    return table
