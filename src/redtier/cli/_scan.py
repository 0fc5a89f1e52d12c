"""`redtier scan`: plan, load the model, generate, judge, store and summarise."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from redtier.backends import ModelBackend, Runtime, default_worker_limits
from redtier.catalog import DEFAULT_MODEL, Precision
from redtier.cli._common import console, error_console, open_store, print_json, settings_of
from redtier.cli._judge import JudgeApiKeyEnvOption, JudgeApiModelOption, JudgeEndpointOption, JudgeModelOption, JudgeTimeoutOption, judge_settings
from redtier.cli._plan import PrecisionOption, TierOption, TiersOption, cost_line, cost_record, load_tier_set, price_scan
from redtier.detectors import llm_judge_detector
from redtier.errors import ConfigError
from redtier.reports import over_refusal_table, summarize, summarize_over_refusal, summary_record, summary_table
from redtier.scan import DEFAULT_TRANSFORMS, PreparedScan, ScanOptions, check_model_sandbox, load_backend, prepare_scan, run_prepared
from redtier.settings import Settings
from redtier.store import AttemptRow, RunRow, Store
from redtier.tiers import STOPPED_BUDGET, CostMeter, JobLimits

logger = logging.getLogger(__name__)

PIPE_PROGRESS_EVERY = 25
"""Attempts between progress lines when output goes to a file or pipe."""
INTERRUPTED_EXIT_STATUS = 130
"""Exit status after Ctrl-C or SIGTERM, as shells report for SIGINT (128 + 2)."""
STOPPED_EXIT_STATUS = 3
"""Exit status of a scan that its budget stopped before every attempt ran."""


PLAN_OPTIONS = (
    "model", "probes", "prompts", "prompt_format", "prompt_column", "goal_column", "transforms",
    "limit", "seed", "max_new_tokens", "temperature", "batch_size", "tier", "precision",
    "execute_code", "judge_model", "judge_endpoint", "judge_api_model", "judge_api_key_env",
    "judge_timeout",
)  # fmt: skip
"""Parameters stored with a run, which --resume reuses rather than takes from the command line.

``budget`` is not one of them: a resumed run may be given a higher --budget."""


def _check_no_plan_options(ctx: typer.Context) -> None:
    """Refuse options that --resume would ignore, since the run keeps its stored ones."""
    # Compared by name: typer ships its own copy of click's ParameterSource.
    passed = [
        param.opts[0]
        for param in ctx.command.params
        if param.name in PLAN_OPTIONS
        and getattr(ctx.get_parameter_source(param.name), "name", "DEFAULT") == "COMMANDLINE"
    ]
    if passed:
        raise ConfigError(
            f"--resume finishes a run with the options stored with it, so {', '.join(passed)} "
            "would be ignored. Leave them out, or start a new scan without --resume."
        )


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
    runtime: Annotated[Runtime, typer.Option(help="Library that runs the model: transformers, or llamacpp for GGUF files (needs `pip install 'redtier\\[llamacpp]'`).")] = Runtime.TRANSFORMERS,
    tier: TierOption = None,
    precision: PrecisionOption = None,
    budget: Annotated[float | None, typer.Option(min=0.01, help="Stop the scan once it has cost this many US dollars at its tier's hourly price; refuse to start if the estimate is higher. With --resume, the run's new budget, counting what it spent before.")] = None,
    tiers_file: TiersOption = None,
    execute_code: Annotated[bool, typer.Option(help="Run code blocks from malicious-code replies in a sandbox and add what they tried to do as evidence.")] = True,
    resume: Annotated[str | None, typer.Option(help="Id of an interrupted run to finish; its stored options are reused.")] = None,
    judge_model: JudgeModelOption = None,
    judge_endpoint: JudgeEndpointOption = None,
    judge_api_model: JudgeApiModelOption = None,
    judge_api_key_env: JudgeApiKeyEnvOption = None,
    judge_timeout: JudgeTimeoutOption = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run attack probes against a model, judge each output and store the results."""
    if resume is not None:
        _check_no_plan_options(ctx)
    check_model_sandbox(sandbox)
    settings = settings_of(ctx)
    store = open_store(ctx)
    options = None
    llm_judge = judge_settings(
        settings,
        model=judge_model,
        endpoint=judge_endpoint,
        api_model=judge_api_model,
        api_key_env=judge_api_key_env,
        timeout_s=judge_timeout,
        sandbox=sandbox,
    )
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
            tier=tier,
            precision=precision.value if precision else None,
            budget_usd=budget,
            execute_code=execute_code,
            llm_judge=llm_judge,
        )
    prepared = prepare_scan(settings, store, options, resume)
    if prepared.run is not None and len(store.done_keys(prepared.run.id)) >= len(prepared.plan):
        status_console = error_console if as_json else console
        status_console.print(
            f"Run {prepared.run.id} already has all {len(prepared.plan)} attempts stored, so "
            "there is nothing to resume and nothing is charged."
        )
        _print_summary(store, prepared.run.id, as_json)
        return
    if resume is not None and budget is not None:
        budgeted = prepared.options.model_copy(update={"budget_usd": budget})
        prepared = dataclasses.replace(prepared, options=budgeted)
    # Built now, so a resumed run whose judge key variable is unset fails before the model loads.
    judge = llm_judge_detector(prepared.options.llm_judge) if prepared.options.llm_judge else None
    tier_set = load_tier_set(tiers_file)
    prepared, meter = price_scan(store, prepared, tier_set)
    limits = None
    if meter is not None:
        limits = JobLimits.for_job(tier_set.get(meter.tier), len(prepared.plan))
    status_console = error_console if as_json else console
    try:
        with status_console.status(f"Loading {prepared.entry.name}…"):
            backend = _load(prepared, settings, sandbox, limits, runtime)
    except KeyboardInterrupt:
        if judge is not None:
            judge.close()
        error_console.print(_load_interrupted_message(prepared))
        raise typer.Exit(INTERRUPTED_EXIT_STATUS) from None
    try:
        run_id, stopped = _execute(store, prepared, backend, meter, as_json)
    except KeyboardInterrupt:
        error_console.print(
            "Interrupted. Stored attempts are kept; `redtier runs` shows the run, and "
            "`redtier scan --resume RUN` finishes it."
        )
        raise typer.Exit(INTERRUPTED_EXIT_STATUS) from None
    finally:
        backend.close()
        if meter is not None:
            meter.finish()
        if judge is not None:
            judge.close()
    _print_summary(store, run_id, as_json)
    if stopped:
        raise typer.Exit(STOPPED_EXIT_STATUS)


def _load_interrupted_message(prepared: PreparedScan) -> str:
    """Describe what Ctrl-C during model loading left behind.

    A new run is created only after loading, so an interrupted new scan stored nothing.
    """
    name = prepared.entry.name
    if prepared.run is None:
        return (
            f"Interrupted while loading {name}, before the run started, so nothing was stored. "
            "Run the command again to scan."
        )
    run_id = prepared.run.id
    return (
        f"Interrupted while loading {name}. Run {run_id} is unchanged, and "
        f"`redtier scan --resume {run_id}` finishes it."
    )


def _load(
    prepared: PreparedScan,
    settings: Settings,
    sandbox: str,
    limits: JobLimits | None,
    runtime: Runtime = Runtime.TRANSFORMERS,
) -> ModelBackend:
    """Load the scan's model at the precision its options name, capped by its tier if priced."""
    precision = Precision(prepared.options.precision or Precision.FP32)
    if limits is None:
        return load_backend(prepared.entry, settings, sandbox=sandbox, precision=precision, runtime=runtime)
    return load_backend(
        prepared.entry,
        settings,
        sandbox=sandbox,
        precision=precision,
        runtime=runtime,
        limits=limits.apply_to(default_worker_limits(prepared.entry, precision)),
        batch_timeout_s=limits.batch_timeout_s(prepared.options.batch_size),
    )


def _execute(
    store: Store,
    prepared: PreparedScan,
    backend: ModelBackend,
    meter: CostMeter | None = None,
    as_json: bool = False,
) -> tuple[str, bool]:
    """Run the scan with a progress bar (on stderr with --json).

    Returns the run id, and whether something such as the budget stopped the run early.
    """
    out = error_console if as_json else console
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("vulnerable {task.fields[vulnerable]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=out, transient=False) as progress:
        task = progress.add_task("Scanning", total=None, vulnerable=0)
        found = 0

        def on_start(run: RunRow, remaining: int) -> None:
            progress.console.print(
                f"Run [bold]{run.id}[/bold]: {len(prepared.plan)} attempts on {prepared.entry.name} "
                f"({remaining} to go), stored in {store.location}"
            )
            progress.update(task, total=remaining)
            if meter is not None:
                meter.attach(run.id)

        done = 0

        def on_attempt(row: AttemptRow) -> None:
            nonlocal found, done
            found += row.verdict == "vulnerable"
            done += 1
            progress.update(task, advance=1, vulnerable=found)
            if not out.is_terminal and done % PIPE_PROGRESS_EVERY == 0:
                # A bar cannot redraw in a log file, so print a line now and then.
                out.print(f"{done} attempts stored, {found} vulnerable")
            if meter is not None:
                meter.on_attempt(row)

        outcome = run_prepared(store, prepared, backend, on_start=on_start, on_attempt=on_attempt)
    if outcome.stopped is not None:
        resume = f"redtier scan --resume {outcome.run_id}"
        if outcome.stopped.status == STOPPED_BUDGET:
            resume += " --budget DOLLARS"
        out.print(
            f"[yellow]Stopped early:[/yellow] {outcome.stopped.message}. Stored attempts are kept; "
            f"`{resume}` continues the run."
        )
    return outcome.run_id, outcome.stopped is not None


def _print_summary(store: Store, run_id: str, as_json: bool) -> None:
    cost = store.get_cost(run_id)
    if as_json:
        print_json(
            {
                "run_id": run_id,
                "database": store.location,
                **summary_record(store, run_id),
                "cost": cost_record(cost) if cost is not None else None,
            }
        )
        return
    rows, total = summarize(store, run_id)
    controls = summarize_over_refusal(store, run_id)
    console.print(summary_table(rows, total, f"Attack success rate by category — run {run_id}"))
    if controls is not None:
        console.print(over_refusal_table(controls, "Over-refusal rate on safe control prompts"))
    if cost is not None:
        console.print(cost_line(cost))
    console.print(
        f"Results stored in [bold]{store.location}[/bold] as run [bold]{run_id}[/bold]. "
        f"`redtier show {run_id}` lists the vulnerabilities found; "
        f"`redtier export {run_id}` writes every attempt as JSON Lines."
    )

