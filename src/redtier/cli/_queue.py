"""Queue commands: submit, queue, cancel and worker."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.table import Table

from redtier.catalog import DEFAULT_MODEL
from redtier.cli._common import console, open_store, print_json, settings_of
from redtier.cli._plan import (
    CpuOnlyFlag,
    PrecisionOption,
    QuantizeFlag,
    SpotFlag,
    TierOption,
    TiersOption,
    format_duration,
    format_usd,
    load_tier_set,
    parse_transforms,
    price_kind,
)
from redtier.queue import JobQueue, JobRow, JobState, Worker, WorkerOptions, submit_scan
from redtier.scan import DEFAULT_TRANSFORMS, ScanOptions

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def submit(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Option(help="Catalog name of the model to test (see `redtier models`).")
    ] = DEFAULT_MODEL,
    probes: Annotated[
        str | None,
        typer.Option(help="Probe ids, categories or globs, comma-separated. Default: all."),
    ] = None,
    prompts: Annotated[
        list[Path] | None,
        typer.Option(help="Prompt file to add, as for `redtier scan`. Repeatable."),
    ] = None,
    transforms: Annotated[
        str, typer.Option(help="Transforms wrapping harmful prompts, comma-separated, or `none`.")
    ] = ",".join(DEFAULT_TRANSFORMS),
    limit: Annotated[int | None, typer.Option(min=1, help="Maximum number of attempts.")] = None,
    seed: Annotated[
        int, typer.Option(help="Seed for canaries, transforms and sampled decoding.")
    ] = 0,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, max=8192, help="Token budget of each reply.")
    ] = 128,
    batch_size: Annotated[
        int, typer.Option(min=1, max=512, help="Prompts generated together in one batch.")
    ] = 32,
    priority: Annotated[
        int,
        typer.Option(
            min=-1_000_000,
            max=1_000_000,
            help="Higher runs sooner; waiting raises a job one level per 10 minutes.",
        ),
    ] = 0,
    tier: TierOption = None,
    precision: PrecisionOption = None,
    budget: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            help="Stop the job once it has cost this many US dollars at its tier's hourly price.",
        ),
    ] = None,
    allow_quantization: QuantizeFlag = None,
    spot: SpotFlag = None,
    cpu_only: CpuOnlyFlag = False,
    tiers_file: TiersOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue a scan for a worker: route it to a tier and estimate its cost first."""
    settings = settings_of(ctx)
    options = ScanOptions(
        model=model,
        probes=probes,
        transforms=parse_transforms(transforms),
        prompt_files=tuple(str(p.resolve()) for p in prompts or ()),
        limit=limit,
        seed=seed,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        tier=tier,
        precision=precision.value if precision else None,
        budget_usd=budget,
    )
    queue = JobQueue(settings.db_url)
    try:
        job, decision = submit_scan(
            queue,
            settings,
            load_tier_set(tiers_file),
            options,
            priority=priority,
            allow_quantization=allow_quantization,
            price=price_kind(spot),
            cpu_only=cpu_only,
        )
    finally:
        queue.close()
    if as_json:
        print_json(_job_record(job, None, queue))
        return
    console.print(
        f"Job [bold]{job.id}[/bold] queued: {job.model} on {job.tier} at {job.precision}, "
        f"priority {job.priority}, {job.planned} attempts, about {format_duration(job.estimated_s)} "
        f"and {format_usd(job.estimated_usd)}. Why: {decision.reason}. "
        f"Start a worker with `redtier worker --tier {job.tier}`."
    )


def queue(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the jobs: running, then waiting in the order workers take them, then finished."""
    settings = settings_of(ctx)
    job_queue = JobQueue(settings.db_url)
    store = open_store(ctx)
    try:
        jobs = job_queue.list_jobs()
        stored = {job.id: store.count_attempts(job.run_id) for job in jobs if job.run_id}
        if as_json:
            print_json([_job_record(job, stored.get(job.id), job_queue) for job in jobs])
            return
        if not jobs:
            console.print("No jobs queued. Add one with `redtier submit --model NAME`.")
            return
        console.print(_jobs_table(jobs, stored, job_queue))
    finally:
        job_queue.close()
        store.close()


def cancel(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="Job id, or a unique prefix of one.")],
) -> None:
    """Cancel a waiting job, or ask the worker of a running job to stop it after the attempt in hand."""
    job_queue = JobQueue(settings_of(ctx).db_url)
    try:
        job = job_queue.cancel(job_id)
    finally:
        job_queue.close()
    if job.state == JobState.CANCELLED:
        console.print(f"Job [bold]{job.id}[/bold] cancelled.")
    else:
        console.print(
            f"Job [bold]{job.id}[/bold] is running on {job.lease_owner}. Its worker sees the "
            "request when it next renews its lease (every third of the lease, 20 s by default) "
            "and then stops after the attempt in hand; if the worker has died, the job is marked "
            "cancelled once its lease expires. Stored attempts are kept."
        )


def worker(
    ctx: typer.Context,
    tier: Annotated[
        str,
        typer.Option(
            "--tier", help="Tier this machine provides; the worker takes jobs that fit it."
        ),
    ],
    once: Annotated[
        bool,
        typer.Option("--once", help="Run at most one job, and exit at once if none is waiting."),
    ] = False,
    max_jobs: Annotated[int | None, typer.Option(min=1, help="Exit after this many jobs.")] = None,
    lease: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Lease length in seconds; renewed every third of it. A killed worker's job is taken over after this long.",
        ),
    ] = 60.0,
    poll: Annotated[
        float, typer.Option(min=0.1, help="Seconds between looks at an empty queue.")
    ] = 5.0,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="Exit after this many seconds without a job. Default: wait for ever."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="CPU threads for generation. Default: every core; give each of several workers on one machine its share.",
        ),
    ] = None,
    sandbox: Annotated[
        str,
        typer.Option(
            help="Where each job's model runs, capped by the tier's memory and timeout: auto (the strongest sandbox that works, see `redtier doctor`), bwrap, process, docker, or none (in this process, with no limits).",
        ),
    ] = "auto",
    tiers_file: TiersOption = None,
) -> None:
    """Take queued jobs for a tier and run them; SIGTERM finishes the attempt in hand and requeues the job."""
    settings = settings_of(ctx)
    options = WorkerOptions(
        tier=tier,
        lease_s=lease,
        poll_s=poll,
        max_jobs=max_jobs,
        once=once,
        idle_timeout_s=idle_timeout,
        threads=threads,
        sandbox=sandbox,
    )
    logging.getLogger("redtier.queue").setLevel(logging.INFO)
    runner = Worker(settings, load_tier_set(tiers_file), options)

    def stop(signum: int, _frame: FrameType | None) -> None:
        runner.request_stop(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        summary = runner.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    done = ", ".join(f"{count} {state}" for state, count in sorted(summary.items())) or "no jobs"
    console.print(f"Worker {options.name} on {tier} stopped: {done}.")


def _jobs_table(jobs: list[JobRow], stored: dict[str, int], job_queue: JobQueue) -> Table:
    table = Table(title="Jobs", title_justify="left")
    for name in (
        "job",
        "state",
        "model",
        "priority",
        "score",
        "tier",
        "attempts",
        "estimate",
        "run",
        "worker",
        "note",
    ):
        table.add_column(
            name, justify="right" if name in {"priority", "score", "attempts"} else "left"
        )
    now = time.time()
    for job in jobs:
        waiting = job.state in {JobState.QUEUED, JobState.INTERRUPTED}
        table.add_row(
            job.id,
            job.state,
            job.model,
            str(job.priority),
            f"{job_queue.score(job, now):.2f}" if waiting else "",
            f"{job.tier} ({job.precision})",
            f"{stored.get(job.id, 0)}/{job.planned}",
            f"{format_duration(job.estimated_s)}, {format_usd(job.estimated_usd)}",
            job.run_id or "",
            job.lease_owner or "",
            job.message or "",
        )
    return table


def _job_record(job: JobRow, stored: int | None, job_queue: JobQueue) -> dict[str, Any]:
    record = {column.key: getattr(job, column.key) for column in JobRow.__table__.columns}
    record.pop("lease_token", None)
    record["eligible_tiers"] = [name for name in job.eligible_tiers.split(",") if name]
    record["stored"] = stored
    record["score"] = job_queue.score(job)
    return record
