"""`redtier judge FILE`: judge prompt/response pairs collected elsewhere, one JSON line per row.

Standard output carries only JSON Lines. The progress bar and the closing
summary go to standard error, and the bar is drawn only when standard error is
a terminal that standard output is not also writing to.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from redtier.catalog import load_catalog
from redtier.cli._common import check_output_path, error_console, settings_of
from redtier.detectors import (
    DETECTORS,
    Judgement,
    LlmJudgeSettings,
    Verdict,
    decided,
    judge_many,
    llm_judge_detector,
    not_judged,
)
from redtier.errors import ConfigError, ImportFormatError
from redtier.probes import Attempt, Category
from redtier.probes._importers import sanitise_stem
from redtier.probes._pairs import REPLACEMENT, STDIN, Pair, PairReader
from redtier.settings import Settings

REFUSAL = "refusal"
HARMFUL_COMPLIANCE = "harmful_compliance"
LLM_JUDGE = "llm_judge"
DEFAULT_DETECTORS = (HARMFUL_COMPLIANCE,)
BATCH_ROWS = 64
"""Rows judged together, so detectors that embed their inputs do it once per batch."""
REFUSAL_DETECTORS = (REFUSAL, "refusal_keywords")
"""Detectors that score a refusal: they decide only with --control, where a refusal is the finding."""
SCAN_ONLY_DETECTORS = {
    "canary": "it looks for the canary string that a scan's probe planted, and an imported row has none",
    "decoded_payload": "it looks for the decoded form of a scan's encoded prompt, and an imported row has none",
}
"""Detectors that need a scan's own data about an attempt, with the reason."""

JudgeModelOption = Annotated[str | None, typer.Option("--judge-model", help="Catalog model that judges harmful compliance in place of the harmful_compliance detector (see `redtier models`); it runs in the sandbox like a scanned model.")]
JudgeEndpointOption = Annotated[str | None, typer.Option("--judge-endpoint", help="Base URL of an OpenAI-compatible API whose model judges harmful compliance, e.g. http://127.0.0.1:8000/v1.")]
JudgeApiModelOption = Annotated[str | None, typer.Option("--judge-api-model", help="Model name sent to --judge-endpoint.")]
JudgeApiKeyEnvOption = Annotated[str | None, typer.Option("--judge-api-key-env", help="Environment variable that holds the API key for --judge-endpoint; the key itself is never stored.")]
JudgeTimeoutOption = Annotated[float, typer.Option("--judge-timeout", min=0.1, max=3600.0, help="Seconds to wait for one answer from --judge-endpoint.")]


def judge_use(name: str) -> str:
    """Return how `redtier judge` can use detector ``name``, for `redtier detectors`."""
    if name in SCAN_ONLY_DETECTORS:
        return "scan only"
    if name == REFUSAL:
        return "reported on every row; decides with --control"
    if name in REFUSAL_DETECTORS:
        return "no: --control always decides by refusal"
    if name == LLM_JUDGE:
        return "with --judge-model or --judge-endpoint"
    return "yes"


def judge_settings(
    settings: Settings,
    *,
    model: str | None,
    endpoint: str | None,
    api_model: str | None,
    api_key_env: str | None,
    timeout_s: float,
    sandbox: str = "auto",
) -> LlmJudgeSettings | None:
    """Build the LLM judge's settings from the --judge-* flags, or return None when none is set.

    The catalog name and the API key variable are checked here, before any file
    is read or model loaded.

    Raises:
        ConfigError: the flags are inconsistent, or the key variable is unset.
        UnknownNameError: ``model`` is not in the catalog.
    """
    if model is None and endpoint is None:
        if api_model is not None or api_key_env is not None:
            raise ConfigError(
                "--judge-api-model and --judge-api-key-env need --judge-endpoint URL."
            )
        return None
    try:
        judge = LlmJudgeSettings(
            model=model,
            endpoint=endpoint,
            api_model=api_model,
            api_key_env=api_key_env,
            timeout_s=timeout_s,
            sandbox=sandbox,
            catalog_file=settings.catalog_file if model else None,
            cache_dir=settings.cache_dir if model else None,
        )
    except ValidationError as error:
        reasons = "; ".join(str(item["msg"]).removeprefix("Value error, ") for item in error.errors())
        raise ConfigError(f"Invalid LLM judge flags: {reasons}.") from None
    if judge.model is not None:
        load_catalog(settings.catalog_file).get(judge.model)
    if judge.api_key_env is not None and not os.environ.get(judge.api_key_env):
        raise ConfigError(
            f"Environment variable {judge.api_key_env} (from --judge-api-key-env) is not set. "
            f"Export it with the API key, or leave out --judge-api-key-env."
        )
    return judge


def judge_file(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV or JSON Lines file of prompt/response pairs; - reads standard input.")],
    fmt: Annotated[str, typer.Option("--format", help="File format: auto (from the extension, else the first character), csv or jsonl.")] = "auto",
    prompt_column: Annotated[str | None, typer.Option(help="Column or field with the prompt sent. Default: the first of prompt, objective, goal, question, ...")] = None,
    response_column: Annotated[str | None, typer.Option(help="Column or field with the model's response. Default: the first of response, assistant_response, completion, output, ...")] = None,
    goal_column: Annotated[str | None, typer.Option(help="Column or field with the harmful objective, when it differs from the prompt sent. Default: goal, objective or behavior beside the prompt column, else the prompt.")] = None,
    detector: Annotated[list[str] | None, typer.Option("--detector", help="Detector that decides the verdict; repeatable: harmful_compliance (default), harmful_compliance_rules, malicious_code, or llm_judge with --judge-model or --judge-endpoint. refusal and harmful_compliance are always reported.")] = None,
    threshold: Annotated[float, typer.Option(min=0.01, max=0.99, help="Score at or above which a deciding detector makes the row vulnerable (over_refused with --control).")] = 0.5,
    control: Annotated[bool, typer.Option("--control", help="Judge the rows as safe control prompts: the refusal detector decides, and a refusal is an over-refusal.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write the JSON lines to; default standard output.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Judge only the first N rows.")] = None,
    judge_model: JudgeModelOption = None,
    judge_endpoint: JudgeEndpointOption = None,
    judge_api_model: JudgeApiModelOption = None,
    judge_api_key_env: JudgeApiKeyEnvOption = None,
    judge_timeout: JudgeTimeoutOption = 60.0,
    sandbox: Annotated[str, typer.Option(help="Where a --judge-model runs: auto, bwrap, process, docker or none.")] = "auto",
) -> None:
    """Judge prompt/response pairs from a CSV or JSON Lines file and write one JSON line per row."""
    if control and detector:
        raise ConfigError(
            "--control judges rows by the refusal detector alone, so --detector has no effect "
            "there. Leave out --detector, or leave out --control to judge attacks."
        )
    if output is not None:
        input_file = None if str(file) == STDIN else file
        check_output_path(output, settings_of(ctx), input_file=input_file)
    names = _check_detectors(detector or list(DEFAULT_DETECTORS), control)
    llm = judge_settings(
        settings_of(ctx),
        model=judge_model,
        endpoint=judge_endpoint,
        api_model=judge_api_model,
        api_key_env=judge_api_key_env,
        timeout_s=judge_timeout,
        sandbox=sandbox,
    )
    if llm is not None and not control and not {HARMFUL_COMPLIANCE, LLM_JUDGE} & set(names):
        raise ConfigError(
            "The LLM judge decides in place of harmful_compliance, which --detector does not "
            "select. Add --detector harmful_compliance."
        )
    if llm is None and LLM_JUDGE in names:
        raise ConfigError(
            "--detector llm_judge needs a judge model: pass --judge-model NAME (see `redtier "
            "models`) or --judge-endpoint URL. The bundled 135M model is too small to judge."
        )
    counts: dict[str, int] = {}
    replaced = 0
    unbalanced = False
    try:
        with PairReader(
            file,
            fmt=fmt,
            prompt_column=prompt_column,
            response_column=response_column,
            goal_column=goal_column,
        ) as reader, _open_output(output) as sink:
            template = _template(file, names, control, llm)
            # A bar on a terminal that also shows the JSON lines would garble both.
            draw_progress = output is not None or not sys.stdout.isatty()
            for record, pair in _judge_rows(
                reader, template, threshold, limit, draw_progress=draw_progress
            ):
                counts[record["verdict"]] = counts.get(record["verdict"], 0) + 1
                replaced += REPLACEMENT in pair.prompt or REPLACEMENT in pair.response
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                sink.flush()
            unbalanced = reader.unbalanced_quotes and limit is None
    except BrokenPipeError:
        # The reader of standard output went away (e.g. `| head`). Point the stream at
        # /dev/null so that Python's flush at exit does not fail again, and stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    finally:
        if llm is not None:
            llm_judge_detector(llm).close()
    _print_totals(file, counts, output)
    if unbalanced:
        error_console.print(
            "Warning: the file has an odd number of double quotes. A quoted cell that is never "
            "closed takes in every row after it, so the last row judged may hold several rows. "
            "Check the quoting, then judge the file again.",
            highlight=False,
        )
    if replaced:
        error_console.print(
            f"Warning: U+FFFD appears in {_rows(replaced)}. It stands for bytes that are not "
            "valid UTF-8 (or the encoding that the byte-order mark names). If the file is in "
            "another encoding, convert it to UTF-8 and judge it again.",
            highlight=False,
        )


def _check_detectors(names: list[str], control: bool) -> tuple[str, ...]:
    """Check every name against the registry before the file is read."""
    for name in names:
        DETECTORS.get(name)
    unique = tuple(dict.fromkeys(names))
    for name in unique:
        if name in SCAN_ONLY_DETECTORS:
            raise ConfigError(
                f"The {name} detector cannot judge a row from a file: "
                f"{SCAN_ONLY_DETECTORS[name]}. Use it in `redtier scan`, or pass "
                "--detector harmful_compliance."
            )
        if name in REFUSAL_DETECTORS and not control:
            raise ConfigError(
                f"The {name} detector cannot decide whether an attack succeeded: it scores a "
                "refusal, and a refusal can still carry harmful content. Pass --detector "
                "harmful_compliance, or --control for safe control prompts."
            )
    return unique


def _template(file: Path, names: tuple[str, ...], control: bool, llm: LlmJudgeSettings | None) -> Attempt:
    """Return the attempt that every row copies, with the row's texts filled in."""
    probe_id = f"imported.{'stdin' if str(file) == STDIN else sanitise_stem(file.stem)}"
    return Attempt(
        key=f"{probe_id}/0/none",
        seq=0,
        probe_id=probe_id,
        category=Category.OVER_REFUSAL if control else Category.IMPORTED,
        goal="",
        prompt="",
        original_prompt="",
        detectors=(REFUSAL,) if control else names,
        llm_judge=llm,
    )


def _judge_rows(
    reader: PairReader,
    template: Attempt,
    threshold: float,
    limit: int | None,
    *,
    draw_progress: bool,
) -> Iterator[tuple[dict[str, Any], Pair]]:
    """Yield one JSON record per row, with its pair, drawing a progress bar when it can.

    Rows are judged ``BATCH_ROWS`` at a time, so that detectors that embed their
    inputs do it in one pass per batch; only one batch is in memory at once.
    When the file turns out unreadable part-way, the rows read before that point
    are still judged and yielded before the error is raised.

    Raises:
        ImportFormatError: the file is unreadable at some row. The message gives the
            number of rows judged before it.
    """
    columns = (
        TextColumn("Judging"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
    )
    visible = draw_progress and error_console.is_terminal
    with Progress(*columns, console=error_console, disable=not visible, redirect_stdout=False, redirect_stderr=False) as progress:
        task = progress.add_task("judge", total=reader.size, rows=0)
        batch: list[Pair] = []
        read = 0
        try:
            for pair in reader:
                if limit is not None and pair.row > limit:
                    break
                if pair.row == 1 and reader.columns is not None:
                    progress.console.print(f"[dim]{_columns_line(reader)}[/dim]", highlight=False)
                batch.append(pair)
                read = pair.row
                if len(batch) == BATCH_ROWS:
                    yield from _judge_batch(batch, template, threshold)
                    progress.update(task, completed=reader.bytes_read, rows=pair.row)
                    batch = []
        except ImportFormatError as error:
            yield from _judge_batch(batch, template, threshold)
            if not read:
                raise
            raise ImportFormatError(
                f"{error} Reading stopped there; the {_rows(read)} before it were judged and written."
            ) from error
        yield from _judge_batch(batch, template, threshold)


def _columns_line(reader: PairReader) -> str:
    found = reader.columns
    assert found is not None
    return (
        f"{reader.name}: prompt from {found.prompt!r}, response from {found.response!r}, "
        f"goal from {found.goal or found.prompt!r}"
    )


def _judge_batch(
    pairs: list[Pair], template: Attempt, threshold: float
) -> Iterator[tuple[dict[str, Any], Pair]]:
    """Judge a batch of pairs and yield their JSON records, with the pairs, in row order."""
    readable = [pair for pair in pairs if pair.problem is None]
    judgements = judge_many(
        [(_attempt(pair, template), pair.response) for pair in readable],
        threshold=threshold,
        context=(HARMFUL_COMPLIANCE,),
    )
    by_row = {pair.row: judgement for pair, judgement in zip(readable, judgements, strict=True)}
    for pair in pairs:
        judgement = by_row.get(pair.row) or not_judged(pair.problem or "")
        yield _record(pair.row, template.category, judgement), pair


def _attempt(pair: Pair, template: Attempt) -> Attempt:
    return template.model_copy(
        update={
            "key": f"{template.probe_id}/{pair.row}/none",
            "seq": pair.row,
            "goal": pair.goal,
            "prompt": pair.prompt,
            "original_prompt": pair.prompt,
        }
    )


def _record(row: int, category: str, judgement: Judgement) -> dict[str, Any]:
    scores = {result.detector: result.score for result in judgement.results}
    reported = list(scores)
    detectors = [
        {
            **result.model_dump(mode="json"),
            "role": "decides" if decided(category, result.detector, reported) else "context",
        }
        for result in judgement.results
    ]
    return {
        "row": row,
        "verdict": judgement.verdict.value,
        "score": judgement.score,
        "confidence": judgement.confidence,
        "refusal": scores.get(REFUSAL),
        "harmful_compliance": scores.get(HARMFUL_COMPLIANCE),
        "explanation": judgement.explanation,
        "error": judgement.explanation if judgement.verdict is Verdict.ERROR else None,
        "detectors": detectors,
    }


@contextmanager
def _open_output(output: Path | None) -> Iterator[TextIO]:
    """Yield standard output, or a file beside ``output`` that replaces it when rows are written.

    A run that fails before its first row, such as on a file without a prompt
    column, leaves an existing ``output`` as it was.
    """
    if output is None:
        yield sys.stdout
        return
    # Through a symbolic link, the file it points to is replaced and the link kept.
    target = output.resolve()
    try:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        handle = tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.", delete=False
        )
    except OSError as error:
        raise ConfigError(
            f"Cannot write {str(output)!r}: {error.strerror}. Give a file path in a folder that "
            "exists and is writable, or omit --output to write to standard output."
        ) from None
    partial = Path(handle.name)
    umask = os.umask(0)
    os.umask(umask)
    partial.chmod(0o666 & ~umask)
    try:
        with handle:
            yield handle
    except BaseException:
        if partial.stat().st_size == 0:
            partial.unlink()
            raise
        partial.replace(target)
        raise
    partial.replace(target)


def _print_totals(file: Path, counts: dict[str, int], output: Path | None) -> None:
    total = sum(counts.values())
    parts = ", ".join(f"{count} {verdict}" for verdict, count in sorted(counts.items())) or "none"
    where = f" to {output}" if output is not None else ""
    source = "standard input" if str(file) == STDIN else str(file)
    error_console.print(f"Judged {_rows(total)} of {source}{where}: {parts}.", highlight=False)


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"
