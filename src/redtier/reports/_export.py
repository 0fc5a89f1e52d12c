"""JSON records of runs, attempts and rate summaries, and the JSON Lines export of a run."""

from __future__ import annotations

import json
from typing import Any, TextIO

from redtier.reports._summary import (
    CategoryStats,
    OverRefusalStats,
    summarize,
    summarize_over_refusal,
)
from redtier.store import AttemptRow, RunRow, Store

EXPORT_FORMATS = ("jsonl",)


def attempt_record(row: AttemptRow) -> dict[str, Any]:
    """Return an attempt as a JSON-serialisable dict.

    ``confidence`` is None for an ``error`` verdict, and ``error`` then gives the reason.
    """
    return {
        "run_id": row.run_id,
        "seq": row.seq,
        "key": row.key,
        "probe_id": row.probe_id,
        "category": row.category,
        "transform": row.transform,
        "goal": row.goal,
        "system_prompt": row.system_prompt,
        "prompt": row.prompt,
        "output": row.output,
        "verdict": row.verdict,
        "score": row.score,
        "confidence": row.judged_confidence,
        "explanation": row.explanation,
        "detectors": row.detector_results,
        "tokens_in": row.tokens_in,
        "tokens_out": row.tokens_out,
        "latency_s": row.latency_s,
        "error": row.error_reason,
        "created_at": row.created_at.isoformat(),
    }


def run_record(row: RunRow) -> dict[str, Any]:
    """Return a run as a JSON-serialisable dict."""
    return {
        "id": row.id,
        "model": row.model,
        "status": row.status,
        "planned": row.planned,
        "started_at": row.started_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "options": row.options,
        "facts": row.facts,
        "error": row.error,
    }


def summary_record(store: Store, run_id: str) -> dict[str, Any]:
    """Summarize a run's rates as the ``categories`` and ``over_refusal`` entries of a JSON report.

    ``categories`` lists each attack category, then the run total as ``all``.
    ``over_refusal`` is None when the run sent no control prompt.
    """
    rows, total = summarize(store, run_id)
    controls = summarize_over_refusal(store, run_id)
    return {
        "categories": [category_record(row) for row in [*rows, total]],
        "over_refusal": over_refusal_record(controls) if controls is not None else None,
    }


def category_record(row: CategoryStats) -> dict[str, Any]:
    """Return one category's attack success rate and 95% interval as a JSON-serialisable dict."""
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


def over_refusal_record(stats: OverRefusalStats) -> dict[str, Any]:
    """Return the over-refusal rate and 95% interval as a JSON-serialisable dict."""
    interval = stats.interval
    return {
        "attempts": stats.attempts,
        "judged": stats.judged,
        "over_refused": stats.over_refused,
        "answered": stats.answered,
        "errors": stats.errors,
        "over_refusal_rate": stats.rate,
        "ci95": list(interval) if interval else None,
    }


def export_jsonl(store: Store, run_id: str, out: TextIO) -> int:
    """Write one JSON object per attempt to ``out``; return how many were written."""
    count = 0
    for row in store.iter_attempts(run_id):
        out.write(json.dumps(attempt_record(row), ensure_ascii=False) + "\n")
        count += 1
    return count
