"""Export a run's attempts as JSON Lines."""

from __future__ import annotations

import json
from typing import Any, TextIO

from redtier.store import AttemptRow, RunRow, Store

EXPORT_FORMATS = ("jsonl",)


def attempt_record(row: AttemptRow) -> dict[str, Any]:
    """Return an attempt as a JSON-serialisable dict."""
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
        "confidence": row.confidence,
        "explanation": row.explanation,
        "detectors": row.detector_results,
        "tokens_in": row.tokens_in,
        "tokens_out": row.tokens_out,
        "latency_s": row.latency_s,
        "error": row.error,
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


def export_jsonl(store: Store, run_id: str, out: TextIO) -> int:
    """Write one JSON object per attempt to ``out``; return how many were written."""
    count = 0
    for row in store.iter_attempts(run_id):
        out.write(json.dumps(attempt_record(row), ensure_ascii=False) + "\n")
        count += 1
    return count
