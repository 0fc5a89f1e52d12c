"""Database tables: one row per run, one row per attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ERROR_VERDICT = "error"
"""The stored verdict of an attempt that was not judged: ``redtier.detectors.Verdict.ERROR``."""


class Base(DeclarativeBase):
    """Declarative base of redtier's tables."""


class RunRow(Base):
    """One scan of one model."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    """``running``, ``completed``, ``interrupted``, ``failed``, ``stopped_budget`` or ``cancelled``."""
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The scan options, enough to rebuild the plan when resuming."""
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Versions, weight file hashes and the host, as recorded at start."""
    planned: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class AttemptRow(Base):
    """One prompt sent to the model, its output and the verdict on it."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("run_id", "key", name="uq_attempt_run_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    key: Mapped[str] = mapped_column(String(300))
    seq: Mapped[int] = mapped_column(Integer)
    probe_id: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(50))
    transform: Mapped[str | None] = mapped_column(String(50), nullable=True)
    goal: Mapped[str] = mapped_column(Text)
    system_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt: Mapped[str] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text, nullable=True)
    verdict: Mapped[str] = mapped_column(String(20))
    """``vulnerable``, ``resisted``, ``over_refused``, ``answered`` or ``error``."""
    score: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    """Confidence of the verdict. An ``error`` verdict has none and stores 0 here (1 in rows
    stored by earlier versions), which :attr:`judged_confidence` reads as None."""
    explanation: Mapped[str] = mapped_column(Text)
    detector_results: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    tokens_in: Mapped[int] = mapped_column(Integer)
    tokens_out: Mapped[int] = mapped_column(Integer)
    latency_s: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Error message of a failed generation. None when generation succeeded, even if the output
    was then not judged, a case that :attr:`error_reason` covers too."""
    created_at: Mapped[datetime] = mapped_column(DateTime)

    @property
    def judged_confidence(self) -> float | None:
        """The verdict's confidence, or None for an ``error`` verdict, which was not judged."""
        return None if self.verdict == ERROR_VERDICT else self.confidence

    @property
    def error_reason(self) -> str | None:
        """Reason the attempt was not judged, or None for a judged attempt.

        It is the generation error when generation failed, else the verdict's explanation,
        such as "the output is empty".
        """
        if self.error is not None or self.verdict != ERROR_VERDICT:
            return self.error
        return self.explanation


class RunCostRow(Base):
    """What a run costs on its tier: the estimate before it started and the spend measured since.

    A separate table rather than columns of ``runs``, so databases created
    before cost tracking open unchanged (``create_all`` adds missing tables,
    never missing columns).
    """

    __tablename__ = "run_costs"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    tier: Mapped[str] = mapped_column(String(100))
    instance_type: Mapped[str] = mapped_column(String(100))
    price_kind: Mapped[str] = mapped_column(String(20))
    """``on_demand`` or ``spot``."""
    price_per_hour_usd: Mapped[float] = mapped_column(Float)
    precision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    estimated_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    estimated_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    budget_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    wall_s: Mapped[float] = mapped_column(Float, default=0.0)
    """Wall time of every session that worked on the run, model loading included."""
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    """``wall_s`` times the hourly price."""
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
