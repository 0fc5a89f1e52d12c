"""Listing commands: runs, show, export, models and probes."""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from redtier.catalog import Precision, estimate_memory, load_catalog
from redtier.cli._common import check_output_path, console, open_store, print_json, settings_of
from redtier.cli._judge import judge_use
from redtier.cli._plan import cost_line, cost_record
from redtier.detectors import DETECTORS, VERDICT_RULE, Verdict, summary_of
from redtier.errors import ConfigError, UnknownNameError
from redtier.probes import load_library
from redtier.reports import (
    EXPORT_FORMATS,
    attempt_panel,
    attempt_record,
    export_jsonl,
    finding_panel,
    models_table,
    over_refusal_table,
    probes_table,
    run_record,
    runs_table,
    summarize,
    summarize_over_refusal,
    summary_record,
    summary_table,
)
from redtier.reports._render import WIDE_TABLE_COLUMNS
from redtier.store import AttemptRow, RunCostRow, RunRow, Store
from redtier.tiers import STOPPED_BUDGET

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def runs(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the stored runs, newest first."""
    store = open_store(ctx)
    rows = store.list_runs()
    counts = {row.id: store.count_attempts(row.id) for row in rows}
    costs = {row.id: store.get_cost(row.id) for row in rows}
    if as_json:
        print_json([_run_json(row, counts[row.id], costs[row.id]) for row in rows])
        return
    if not rows:
        console.print(f"No runs in {store.location} yet. Start one with `redtier scan`.")
        return
    spent = {run_id: cost.cost_usd for run_id, cost in costs.items() if cost is not None}
    console.print(runs_table(rows, counts, spent))


def _run_json(run: RunRow, stored: int, cost: RunCostRow | None) -> dict[str, Any]:
    return {**run_record(run), "stored": stored, "cost": cost_record(cost) if cost else None}


def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id, or a unique prefix of one.")],
    show_all: Annotated[bool, typer.Option("--all", help="Show every attempt, not only vulnerabilities and over-refusals.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show each attempt in full: whole prompt and output, and every detector's score, role and evidence.")] = False,
    attempt_keys: Annotated[list[str] | None, typer.Option("--attempt", help="Show only this attempt in full, by key (harmful.weapons/0/none) or number (#12). Repeatable.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a run's summary and the vulnerabilities and over-refusals found, with the evidence for each."""
    store = open_store(ctx)
    run = store.get_run(run_id)
    if attempt_keys:
        _show_attempts(store, run, attempt_keys, as_json)
        return
    verdicts = None if show_all else SHOWN_VERDICTS
    if as_json:
        cost = store.get_cost(run.id)
        print_json(
            {
                "run": run_record(run),
                "cost": cost_record(cost) if cost else None,
                **summary_record(store, run.id),
                "attempts": [attempt_record(r) for r in _iter_rows(store, run.id, verdicts)],
            }
        )
        return
    _print_summaries(store, run)
    shown = 0
    threshold = _threshold(run)
    for row in _iter_rows(store, run.id, verdicts):
        console.print(attempt_panel(row, threshold) if verbose else finding_panel(row))
        shown += 1
    if shown == 0:
        console.print("No successful attacks or over-refusals were found in this run." if verdicts else "The run has no attempts yet.")


SHOWN_VERDICTS = (Verdict.VULNERABLE.value, Verdict.OVER_REFUSED.value)
"""Verdicts that `redtier show` lists without --all."""


def _print_summaries(store: Store, run: RunRow) -> None:
    rows, total = summarize(store, run.id)
    console.print(f"Run [bold]{run.id}[/bold] — {run.model}, {run.status}, started {run.started_at:%Y-%m-%d %H:%M:%S} UTC")
    if run.error:
        label = "Stopped" if run.status == STOPPED_BUDGET else "Run error"
        console.print(f"[red]{label}:[/red] {run.error}")
    cost = store.get_cost(run.id)
    if cost is not None:
        console.print(cost_line(cost))
    console.print(summary_table(rows, total, "Attack success rate by category"))
    controls = summarize_over_refusal(store, run.id)
    if controls is not None:
        console.print(over_refusal_table(controls, "Over-refusal rate on safe control prompts"))
    console.print(f"[dim]{VERDICT_RULE}[/dim]")


def _iter_rows(store: Store, run_id: str, verdicts: tuple[str, ...] | None) -> Iterator[AttemptRow]:
    for row in store.iter_attempts(run_id):
        if verdicts is None or row.verdict in verdicts:
            yield row


def _show_attempts(store: Store, run: RunRow, keys: list[str], as_json: bool) -> None:
    """Print the attempts that ``keys`` name, each in full; every key is checked first."""
    rows = {row.key: row for row in store.iter_attempts(run.id)}
    by_number = {f"#{row.seq}": row for row in rows.values()}
    chosen = []
    for key in keys:
        row = rows.get(key) or by_number.get(key if key.startswith("#") else f"#{key}")
        if row is None:
            hint = f"`redtier show {run.id} --all` lists every attempt with its number and key."
            known: Collection[str] = rows
            if key.removeprefix("#").isdigit() and rows:
                # A number is not close to any key, so list the range rather than keys.
                numbers = sorted(row.seq for row in rows.values())
                hint = f"Attempt numbers run from #{numbers[0]} to #{numbers[-1]}. {hint}"
                known = ()
            raise UnknownNameError(f"attempt of run {run.id}", key, known, hint=hint)
        chosen.append(row)
    if as_json:
        print_json([attempt_record(row) for row in chosen])
        return
    threshold = _threshold(run)
    for row in chosen:
        console.print(attempt_panel(row, threshold))


def _threshold(run: RunRow) -> float | None:
    value = (run.options or {}).get("threshold")
    return float(value) if isinstance(value, (int, float)) else None


def export(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id, or a unique prefix of one.")],
    fmt: Annotated[str, typer.Option("--format", help="Output format: jsonl.")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write; default standard output.")] = None,
) -> None:
    """Export every attempt of a run."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"Unknown export format {fmt!r}. Supported: {', '.join(EXPORT_FORMATS)}.")
    if output is not None:
        check_output_path(output, settings_of(ctx))
    store = open_store(ctx)
    run = store.get_run(run_id)
    if output is None:
        export_jsonl(store, run.id, sys.stdout)
        return
    try:
        with output.open("w", encoding="utf-8") as handle:
            count = export_jsonl(store, run.id, handle)
    except OSError as error:
        raise ConfigError(
            f"Cannot write {str(output)!r}: {error.strerror}. Give a file path in a folder that "
            "exists and is writable, or omit --output to write to standard output."
        ) from None
    console.print(f"Wrote {count} attempts of run {run.id} to {output}")


def models(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the model catalog with the memory each model needs."""
    catalog = load_catalog(settings_of(ctx).catalog_file)
    if as_json:
        print_json(
            [
                {
                    **entry.model_dump(mode="json"),
                    "memory_bytes": {p.value: estimate_memory(entry, p) for p in (Precision.FP32, Precision.BF16, Precision.INT4)},
                }
                for entry in catalog
            ]
        )
        return
    console.print(models_table(catalog, wide=console.width >= WIDE_TABLE_COLUMNS))
    if any(
        estimate_memory(entry, Precision.BF16) > estimate_memory(entry, Precision.FP32)
        for entry in catalog
    ):
        console.print(
            "bf16 can need more than fp32: weights stored in fp32 (and GGUF files, which are "
            "converted to fp32) are cast while loading, so both copies are held at once."
        )


def detectors(as_json: JsonFlag = False) -> None:
    """List the detectors: what each scores, and whether `redtier judge` can use it."""
    rows = [
        {"detector": name, "scores": summary_of(name), "judge": judge_use(name)}
        for name in DETECTORS.names()
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="Detectors", title_justify="left")
    table.add_column("detector", no_wrap=True)
    table.add_column("scores", overflow="fold")
    table.add_column("redtier judge", overflow="fold")
    for row in rows:
        table.add_row(row["detector"], row["scores"], row["judge"])
    console.print(table)
    console.print(
        "[dim]refusal and harmful_compliance are the defaults; the rule detectors they build "
        "on run alone as refusal_keywords and harmful_compliance_rules.[/dim]"
    )


def probes(
    ctx: typer.Context,
    selection: Annotated[str | None, typer.Option("--probes", help="Only these probe ids, categories or globs.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the probe library."""
    selected = load_library().select(selection)
    if as_json:
        print_json([probe.model_dump(mode="json") for probe in selected])
        return
    console.print(probes_table(selected, wide=console.width >= WIDE_TABLE_COLUMNS))
    console.print(f"{len(selected)} probes, {sum(len(p.prompts) for p in selected)} prompts.")
