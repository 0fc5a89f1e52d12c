"""The jobs table: one row per queued scan, in the same database as the runs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class QueueBase(DeclarativeBase):
    """Declarative base of the queue's tables, created next to the store's tables."""


class JobState(StrEnum):
    """Lifecycle state of a job."""

    QUEUED = "queued"
    RUNNING = "running"
    """Taken by a worker that holds its lease; takeable again once the lease expires."""
    INTERRUPTED = "interrupted"
    """Stopped by SIGTERM or Ctrl-C after its last stored attempt, and queued again."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STOPPED_BUDGET = "stopped_budget"
    """Stopped when its spend reached its budget; its stored attempts are kept."""


FINAL_STATES = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.STOPPED_BUDGET}
)
WAITING_STATES = (JobState.QUEUED.value, JobState.INTERRUPTED.value)


class JobRow(QueueBase):
    """One scan waiting for, or held by, a worker."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The scan options, as ``redtier scan`` would store them with the run."""
    priority: Mapped[int] = mapped_column(Integer)
    size_penalty: Mapped[float] = mapped_column(Float)
    """``log2(1 + estimated minutes)`` on the routed tier; see the aging rule in ``_queue``."""
    submitted_epoch: Mapped[float] = mapped_column(Float, index=True)
    submitted_at: Mapped[datetime] = mapped_column(DateTime)
    state: Mapped[str] = mapped_column(String(20), index=True)
    tier: Mapped[str] = mapped_column(String(100))
    """The tier routing chose: workers of this tier take the job first."""
    eligible_tiers: Mapped[str] = mapped_column(String(2000))
    """Every tier the job fits, written ``,a,b,`` so SQL can match ``,name,``."""
    precision: Mapped[str] = mapped_column(String(20))
    """The precision chosen on ``tier``."""
    planned: Mapped[int] = mapped_column(Integer)
    estimated_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    estimated_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The run this job writes to, set when its first worker starts it."""
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """``host:pid`` of the worker that holds or last held the lease."""
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """Random token of the current lease; renewing and finishing must present it."""
    lease_expires_epoch: Mapped[float | None] = mapped_column(Float, nullable=True)
    takes: Mapped[int] = mapped_column(Integer, default=0)
    """Takes whose lease expired, plus the one running. A take that ends in a clean
    requeue (``interrupted``) is not counted."""
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Reason the job failed, stopped or was interrupted."""
