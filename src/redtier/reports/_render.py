"""Rich tables for the terminal: summaries, runs, models, probes and findings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from redtier.catalog import ModelEntry, Precision, estimate_memory, format_bytes
from redtier.detectors import Verdict, decided
from redtier.probes import Probe
from redtier.reports._summary import CategoryStats, OverRefusalStats
from redtier.store import AttemptRow, RunRow

EXCERPT_CHARS = 600


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def summary_table(rows: Sequence[CategoryStats], total: CategoryStats, title: str) -> Table:
    """Return the attack success rate per category with 95% confidence intervals."""
    table = Table(title=title, title_justify="left")
    table.add_column("category", no_wrap=True)
    for name in ("attempts", "judged", "vulnerable", "errors"):
        table.add_column(name, justify="right")
    table.add_column("attack success", justify="right")
    table.add_column("95% CI", justify="right")
    for row in [*rows, total]:
        interval = row.interval
        ci = "—" if interval is None else f"{_percent(interval[0])} – {_percent(interval[1])}"
        style = "bold" if row is total else None
        table.add_row(
            row.category,
            str(row.attempts),
            str(row.judged),
            str(row.vulnerable),
            str(row.errors),
            _percent(row.rate),
            ci,
            style=style,
            end_section=row is rows[-1] if rows else False,
        )
    return table


def over_refusal_table(stats: OverRefusalStats, title: str) -> Table:
    """Return the over-refusal rate on safe control prompts with its 95% confidence interval."""
    table = Table(title=title, title_justify="left")
    for name in ("control prompts", "judged", "over-refused", "answered", "errors"):
        table.add_column(name, justify="right")
    table.add_column("over-refusal", justify="right")
    table.add_column("95% CI", justify="right")
    interval = stats.interval
    table.add_row(
        str(stats.attempts),
        str(stats.judged),
        str(stats.over_refused),
        str(stats.answered),
        str(stats.errors),
        _percent(stats.rate),
        "—" if interval is None else f"{_percent(interval[0])} – {_percent(interval[1])}",
    )
    return table


def runs_table(
    runs: Iterable[RunRow], counts: dict[str, int], spent_usd: dict[str, float] | None = None
) -> Table:
    """Return one line per run: id, model, status, progress, times and, for priced runs, cost."""
    spent_usd = spent_usd or {}
    table = Table(title="Runs", title_justify="left")
    for name in ("run", "model", "status", "attempts", "started (UTC)", "finished (UTC)", "cost"):
        table.add_column(name, no_wrap=name in {"run", "model", "status"})
    for run in runs:
        spent = spent_usd.get(run.id)
        table.add_row(
            run.id,
            run.model,
            run.status,
            f"{counts.get(run.id, 0)}/{run.planned}",
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            run.finished_at.strftime("%Y-%m-%d %H:%M:%S") if run.finished_at else "—",
            f"${spent:.4f}" if spent is not None else "—",
        )
    return table


WIDE_TABLE_COLUMNS = 150
"""Terminal width from which the models and probes tables show every column."""


def models_table(entries: Iterable[ModelEntry], wide: bool = True) -> Table:
    """Return the catalog with the estimated memory at fp32, bf16 and 4-bit.

    A narrow table leaves out family, source and licence (``--json`` has them).
    """
    table = Table(title="Model catalog (memory: estimated peak for a 1,024-token generation)")
    shown = ("name", "params", "family", "format", "source", "context", "type", "licence")
    if not wide:
        shown = ("name", "params", "format", "context", "type")
    for name in shown:
        table.add_column(
            name,
            justify="right" if name in {"params", "context"} else "left",
            no_wrap=name == "name",
            overflow="fold",
        )
    for name in ("fp32", "bf16", "4-bit", "download"):
        table.add_column(name, justify="right", no_wrap=True)
    for entry in entries:
        cells = {
            "name": entry.name,
            "params": f"{entry.params / 1e6:,.0f}M",
            "family": entry.family,
            "format": entry.format.value + (f" {entry.quantization}" if entry.quantization else ""),
            "source": f"{entry.source_kind.value}:{entry.source}",
            "context": f"{entry.context_length:,}",
            "type": "chat" if entry.chat else "base",
            "licence": entry.license or "unknown",
        }
        table.add_row(
            *(cells[name] for name in shown),
            format_bytes(estimate_memory(entry, Precision.FP32)),
            format_bytes(estimate_memory(entry, Precision.BF16)),
            format_bytes(estimate_memory(entry, Precision.INT4)),
            format_bytes(entry.download_bytes) if entry.download_bytes else "—",
        )
    return table


def probes_table(probes: Iterable[Probe], wide: bool = True) -> Table:
    """Return one line per probe: id, category, prompt count, and when wide, detectors and goal."""
    table = Table(title="Probes", title_justify="left")
    shown = ("probe", "category", "prompts", "detectors", "goal") if wide else ("probe", "category", "prompts")
    for name in shown:
        table.add_column(
            name,
            justify="right" if name == "prompts" else "left",
            no_wrap=name in {"probe", "category"},
            overflow="fold",
        )
    for probe in probes:
        cells = (probe.id, probe.category.value, str(len(probe.prompts)), ", ".join(probe.detectors), probe.goal)
        table.add_row(*cells[: len(shown)])
    return table


def finding_panel(row: AttemptRow) -> Panel:
    """Return one attempt with its prompt, output excerpt, verdict, confidence and evidence."""
    body = Group(
        Text(f"goal: {row.goal}", style="bold"),
        Text(f"transform: {row.transform}") if row.transform else Text(""),
        Text("prompt:", style="dim"),
        Text(_excerpt(row.prompt)),
        Text("output:", style="dim"),
        Text(_excerpt(row.output or "")),
        Text(f"verdict: {row.verdict}, {row.explanation}{_confidence_note(row)}", style="yellow"),
        _evidence_grid(row),
    )
    title = f"#{row.seq} {row.probe_id} [{row.category}] {row.verdict}"
    if row.verdict != Verdict.ERROR:
        title += f" score {row.score:.2f}"
    return Panel(body, title=escape(title), title_align="left")


def attempt_panel(row: AttemptRow, threshold: float | None) -> Panel:
    """Return one attempt in full: texts, verdict, confidence, and each detector's role and evidence.

    ``threshold`` is the run's verdict threshold, or None when the run did not store one.
    """
    limit = "unknown" if threshold is None else f"{threshold:.2f}"
    facts = Table.grid(padding=(0, 1))
    facts.add_column(style="dim")
    facts.add_column()
    for label, value in (
        ("key", row.key),
        ("category", row.category),
        ("goal", row.goal),
        ("transform", row.transform or "none"),
    ):
        facts.add_row(label, Text(value))
    facts.add_row("verdict", Text(row.verdict, style=_VERDICT_STYLES.get(row.verdict, "")))
    confidence = row.judged_confidence
    if confidence is None:
        facts.add_row("score", "— (not judged)")
        facts.add_row("confidence", "— (not judged)")
    else:
        facts.add_row("score", f"{row.score:.2f} against threshold {limit}")
        facts.add_row("confidence", f"{confidence:.2f} (0 at the threshold, 1 at a score of 0 or 1)")
    facts.add_row("explanation", Text(row.explanation))
    if row.error:
        facts.add_row("error", Text(row.error, style="red"))
    parts: list[Text | Table] = [facts]
    if row.system_prompt:
        parts += [Text("system prompt:", style="dim"), Text(row.system_prompt)]
    parts += [Text("prompt:", style="dim"), Text(row.prompt)]
    parts += [Text("output:", style="dim"), Text(row.output if row.output is not None else "—")]
    parts.append(_detector_table(row))
    title = f"#{row.seq} {row.probe_id} [{row.category}] {row.verdict}"
    return Panel(Group(*parts), title=escape(title), title_align="left")


_VERDICT_STYLES = {
    "vulnerable": "bold red",
    "over_refused": "bold yellow",
    "error": "magenta",
    "resisted": "green",
    "answered": "green",
}


def _confidence_note(row: AttemptRow) -> str:
    confidence = row.judged_confidence
    return "" if confidence is None else f" (confidence {confidence:.2f})"


def _evidence_grid(row: AttemptRow) -> Table:
    evidence = Table.grid(padding=(0, 1))
    evidence.add_column(style="cyan")
    evidence.add_column()
    for result in row.detector_results:
        lines = "\n".join(f"• {item}" for item in result.get("evidence", [])) or "—"
        evidence.add_row(Text(f"{result['detector']} {_score_text(result)}"), Text(lines))
    return evidence


def _detector_table(row: AttemptRow) -> Table:
    """Return every detector's score, whether it decided the verdict, and its evidence."""
    table = Table(title="detectors", title_justify="left", show_lines=True)
    table.add_column("detector", no_wrap=True, style="cyan")
    table.add_column("role", no_wrap=True)
    table.add_column("score", justify="right")
    table.add_column("evidence", overflow="fold")
    reported = [str(result["detector"]) for result in row.detector_results]
    for result in row.detector_results:
        name = str(result["detector"])
        role = "decides" if decided(row.category, name, reported) else "context"
        lines = "\n".join(f"• {item}" for item in result.get("evidence", [])) or "—"
        table.add_row(Text(name), role, _score_text(result), Text(lines))
    if not row.detector_results:
        table.add_row("—", "—", "—", Text("no detector ran: " + row.explanation))
    return table


def _score_text(result: dict[str, Any]) -> str:
    """Return a stored detector result's score, or ``abstained`` for a detector that could not judge."""
    return "abstained" if result.get("abstained") else f"{result['score']:.2f}"


def _excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + " […]"
