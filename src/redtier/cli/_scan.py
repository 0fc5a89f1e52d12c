"""`redtier scan`: plan, load the model, generate, judge, store and summarise."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from redtier.backends import ModelBackend
from redtier.catalog import DEFAULT_MODEL
from redtier.cli._common import console, open_store, print_json, settings_of
from redtier.reports import CategoryStats, summarize, summary_table
from redtier.scan import DEFAULT_TRANSFORMS, PreparedScan, ScanOptions, load_backend, prepare_scan, run_prepared
from redtier.store import AttemptRow, RunRow, Store

logger = logging.getLogger(__name__)


def scan(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Catalog name of the model to test (see `redtier models`).")] = DEFAULT_MODEL,
    probes: Annotated[str | None, typer.Option(help="Probe ids, categories or globs, comma-separated (see `redtier probes`). Default: all; `none` with --prompts uses only the file.")] = None,
    prompts: Annotated[list[Path] | None, typer.Option(help="Prompt file to add: AdvBench/HarmBench/JBB CSV, .txt (one per line) or .jsonl. Repeatable.")] = None,
    prompt_format: Annotated[str, typer.Option(help="Format of --prompts files: auto, advbench, harmbench, jailbreakbench, csv, txt or jsonl.")] = "auto",
    prompt_column: Annotated[str | None, typer.Option(help="Column or JSON field of --prompts files that holds the prompt.")] = None,
    goal_column: Annotated[str | None, typer.Option(help="Column or JSON field of --prompts files that holds the harmful goal, when it differs from the prompt.")] = None,
    transforms: Annotated[str, typer.Option(help="Transforms wrapping harmful prompts, comma-separated, or `none`.")] = ",".join(DEFAULT_TRANSFORMS),
    limit: Annotated[int | None, typer.Option(min=1, help="Maximum number of attempts, spread over every selected category.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for canaries, transforms and sampled decoding.")] = 0,
    max_new_tokens: Annotated[int, typer.Option(min=1, max=8192, help="Token budget of each reply.")] = 128,
    temperature: Annotated[float, typer.Option(min=0.0, max=5.0, help="Sampling temperature; 0 means greedy decoding.")] = 0.0,
    batch_size: Annotated[int, typer.Option(min=1, max=512, help="Prompts generated together in one batch.")] = 32,
    sandbox: Annotated[str, typer.Option(help="Where the model runs: auto (the strongest sandbox that works, see `redtier doctor`), bwrap, process, docker, or none (in this process, unsandboxed).")] = "auto",
    resume: Annotated[str | None, typer.Option(help="Id of an interrupted run to finish; its stored options are reused.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run attack probes against a model, judge each output and store the results."""
    settings = settings_of(ctx)
    store = open_store(ctx)
    options = None
    if resume is None:
        names = () if transforms.strip().lower() == "none" else tuple(t.strip() for t in transforms.split(",") if t.strip())
        options = ScanOptions(
            model=model,
            probes=probes,
            transforms=names,
            prompt_files=tuple(str(p.resolve()) for p in prompts or ()),
            prompt_format=prompt_format,
            prompt_column=prompt_column,
            goal_column=goal_column,
            limit=limit,
            seed=seed,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            batch_size=batch_size,
        )
    prepared = prepare_scan(settings, store, options, resume)
    with console.status(f"Loading {prepared.entry.name}…"):
        backend = load_backend(prepared.entry, settings, sandbox=sandbox)
    try:
        run_id = _execute(store, prepared, backend)
    finally:
        backend.close()
    _print_summary(store, run_id, as_json)


def _execute(store: Store, prepared: PreparedScan, backend: ModelBackend) -> str:
    """Run the scan with a progress bar; return the run id."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("vulnerable {task.fields[vulnerable]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("Scanning", total=None, vulnerable=0)
        found = 0

        def on_start(run: RunRow, remaining: int) -> None:
            progress.console.print(
                f"Run [bold]{run.id}[/bold]: {len(prepared.plan)} attempts on {prepared.entry.name} "
                f"({remaining} to go), stored in {store.location}"
            )
            progress.update(task, total=remaining)

        def on_attempt(row: AttemptRow) -> None:
            nonlocal found
            found += row.verdict == "vulnerable"
            progress.update(task, advance=1, vulnerable=found)

        outcome = run_prepared(store, prepared, backend, on_start=on_start, on_attempt=on_attempt)
    return outcome.run_id


def _print_summary(store: Store, run_id: str, as_json: bool) -> None:
    rows, total = summarize(store, run_id)
    if as_json:
        print_json(
            {
                "run_id": run_id,
                "database": store.location,
                "categories": [_stats_json(row) for row in [*rows, total]],
            }
        )
        return
    console.print(summary_table(rows, total, f"Attack success rate by category — run {run_id}"))
    console.print(
        f"Results stored in [bold]{store.location}[/bold] as run [bold]{run_id}[/bold]. "
        f"`redtier show {run_id}` lists the vulnerabilities found; "
        f"`redtier export {run_id}` writes every attempt as JSON Lines."
    )


def _stats_json(row: CategoryStats) -> dict[str, object]:
    interval = row.interval
    return {
        "category": row.category,
        "attempts": row.attempts,
        "judged": row.judged,
        "vulnerable": row.vulnerable,
        "errors": row.errors,
        "attack_success_rate": row.rate,
        "ci95": list(interval) if interval else None,
    }
