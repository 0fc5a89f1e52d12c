"""The job queue: jobs in the runs database, taken by workers under renewable leases.

Order. A worker takes the waiting job with the highest score::

    score = priority - log2(1 + estimated_minutes) + minutes_waited / 10

``priority`` is the explicit ``--priority`` (higher first). The size term
puts a short job ahead of a long one of the same priority, so small jobs do
not wait behind large ones. The waiting term raises every job by one
priority level per ten minutes (``aging_s``). So a long job waits at most
``aging_s × (its size term - a small job's size term)`` before it outranks
every newly submitted job of its priority. For example, a 1-hour job behind
a stream of 1-minute jobs waits at most about 50 minutes. Every waiting job
ages at the same rate, so the order does not depend on when a worker asks,
and the query sorts on ``priority - size_penalty - submitted_epoch / aging_s``.

Workers take jobs routed to their own tier first, then any job their tier
fits. Ties go to the earlier submission.

Leases. Taking a job sets ``running``, the worker's name, a random lease
token and an expiry; the worker renews the expiry while it works. A job whose
lease expired (its worker was killed) is takeable again, and the new worker
resumes its run. Taking runs as one ``UPDATE … WHERE id = (SELECT …) AND
<still takeable>`` inside ``BEGIN IMMEDIATE``, and succeeds only if it changed
exactly one row, so two workers never take the same job.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, and_, create_engine, event, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, SQLAlchemyError

from redtier.errors import ConfigError, StoreError
from redtier.queue._schema import FINAL_STATES, WAITING_STATES, JobRow, JobState, QueueBase
from redtier.store import utcnow
from redtier.store._store import create_tables, make_database_folder

logger = logging.getLogger(__name__)

DEFAULT_AGING_S = 600.0
"""Waiting time that raises a job by one priority level."""
SIZE_UNIT_S = 60.0
"""Estimated duration that costs a job one priority level (log2 scale)."""
DEFAULT_MAX_TAKES = 5
"""Times a job may be taken before a lease expiry marks it failed instead of retaking it."""
BUSY_TIMEOUT_S = 30.0
"""How long a queue operation waits for another process's write lock."""


class JobNotFoundError(StoreError):
    """A job id that the queue does not contain."""


class LeaseStatus(StrEnum):
    """The result of renewing a lease."""

    HELD = "held"
    LOST = "lost"
    """Another worker took the job after the lease expired, or it was finished elsewhere."""
    CANCEL_REQUESTED = "cancel_requested"


def size_penalty(estimated_s: float | None) -> float:
    """Return the priority levels a job loses for its estimated duration."""
    return math.log2(1 + max(estimated_s or 0.0, 0.0) / SIZE_UNIT_S)


def default_worker_name() -> str:
    """Return ``host:pid`` for this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class JobQueue:
    """Jobs in one SQLite database, shared by any number of worker processes."""

    def __init__(
        self, url: str, *, aging_s: float = DEFAULT_AGING_S, max_takes: int = DEFAULT_MAX_TAKES
    ) -> None:
        if make_url(url).get_backend_name() != "sqlite":
            raise ConfigError(
                f"The job queue needs an SQLite database, got {make_url(url).render_as_string()}. "
                "Point --db at an SQLite file."
            )
        self.url = url
        self.aging_s = aging_s
        self.max_takes = max_takes
        make_database_folder(url)
        self._engine = _immediate_engine(url)
        with self._errors("open the job queue"):
            create_tables(self._engine, QueueBase.metadata)

    def close(self) -> None:
        """Close the database connections."""
        self._engine.dispose()

    def submit(
        self,
        *,
        model: str,
        options: dict[str, Any],
        priority: int,
        tier: str,
        precision: str,
        eligible_tiers: Sequence[str],
        planned: int,
        estimated_s: float | None,
        estimated_usd: float | None,
        now: float | None = None,
    ) -> JobRow:
        """Queue a job and return it."""
        submitted = time.time() if now is None else now
        row = JobRow(
            id=secrets.token_hex(6),
            model=model,
            options=options,
            priority=priority,
            size_penalty=size_penalty(estimated_s),
            submitted_epoch=submitted,
            submitted_at=utcnow(),
            state=JobState.QUEUED.value,
            tier=tier,
            eligible_tiers="," + ",".join(eligible_tiers) + ",",
            precision=precision,
            planned=planned,
            estimated_s=estimated_s,
            estimated_usd=estimated_usd,
            takes=0,
            cancel_requested=False,
        )
        values = {column.name: getattr(row, column.key) for column in JobRow.__table__.columns}
        with self._transaction("submit a job") as connection:
            connection.execute(JobRow.__table__.insert().values(**values))
        return row

    def score(self, job: JobRow, now: float | None = None) -> float:
        """Return a job's current score under the aging rule."""
        waited = (time.time() if now is None else now) - job.submitted_epoch
        return job.priority - job.size_penalty + waited / self.aging_s

    def list_jobs(self, now: float | None = None) -> list[JobRow]:
        """Return every job: waiting ones in the order workers take them, then the rest, newest first.

        A job whose cancel was asked for and whose worker then stopped renewing
        its lease is marked cancelled first.
        """
        current = time.time() if now is None else now
        with self._transaction("read jobs") as connection:
            self._cancel_abandoned(connection, current)
            rows = [_to_row(r) for r in connection.execute(select(JobRow.__table__))]
        waiting = sorted(
            (r for r in rows if r.state in WAITING_STATES),
            key=lambda r: (-self._sort_key(r), r.submitted_epoch, r.id),
        )
        newest_first = sorted(
            (r for r in rows if r.state not in WAITING_STATES), key=lambda r: -r.submitted_epoch
        )
        running = [r for r in newest_first if r.state == JobState.RUNNING]
        ended = [r for r in newest_first if r.state != JobState.RUNNING]
        return running + waiting + ended

    def get(self, job_id: str) -> JobRow:
        """Return the job whose id is ``job_id`` or starts with it."""
        with self._transaction("read jobs") as connection:
            table = JobRow.__table__
            rows = [
                _to_row(r)
                for r in connection.execute(select(table).where(table.c.id.startswith(job_id)))
            ]
        exact = [row for row in rows if row.id == job_id]
        if exact:
            return exact[0]
        if len(rows) == 1 and job_id:
            return rows[0]
        if len(rows) > 1:
            raise JobNotFoundError(
                f"Job id prefix {job_id!r} matches {len(rows)} jobs: give more characters."
            )
        raise JobNotFoundError(f"Job {job_id!r} not found. `redtier queue` lists the jobs.")

    def cancel(self, job_id: str, now: float | None = None) -> JobRow:
        """Cancel a waiting job at once, or ask the worker of a running job to stop it."""
        job = self.get(job_id)
        current = time.time() if now is None else now
        table = JobRow.__table__
        if job.state in FINAL_STATES:
            raise ConfigError(f"Job {job.id} is already {job.state}; there is nothing to cancel.")
        with self._transaction("cancel a job") as connection:
            held = and_(
                table.c.state == JobState.RUNNING.value, table.c.lease_expires_epoch >= current
            )
            connection.execute(
                update(table).where(table.c.id == job.id, held).values(cancel_requested=True)
            )
            connection.execute(
                update(table)
                .where(
                    table.c.id == job.id,
                    ~held,
                    table.c.state.not_in([s.value for s in FINAL_STATES]),
                )
                .values(
                    state=JobState.CANCELLED.value,
                    finished_at=utcnow(),
                    message="cancelled before it finished",
                    lease_token=None,
                )
            )
        return self.get(job.id)

    def take(
        self, tier: str, worker: str, lease_s: float, now: float | None = None
    ) -> JobRow | None:
        """Take the best waiting job that ``tier`` can run, or return None when there is none."""
        current = time.time() if now is None else now
        table = JobRow.__table__
        token = secrets.token_hex(16)
        expired = and_(
            table.c.state == JobState.RUNNING.value, table.c.lease_expires_epoch < current
        )
        takeable = or_(
            table.c.state.in_(WAITING_STATES), and_(expired, table.c.takes < self.max_takes)
        )
        score = table.c.priority - table.c.size_penalty - table.c.submitted_epoch / self.aging_s
        best = (
            select(table.c.id)
            .where(
                takeable,
                table.c.eligible_tiers.contains(f",{tier},"),
                table.c.cancel_requested.is_(False),
            )
            .order_by(
                (table.c.tier == tier).desc(), score.desc(), table.c.submitted_epoch, table.c.id
            )
            .limit(1)
            .scalar_subquery()
        )
        with self._transaction("take a job") as connection:
            self._cancel_abandoned(connection, current)
            self._fail_retaken_too_often(connection, expired)
            result = connection.execute(
                update(table)
                .where(table.c.id == best, takeable)
                .values(
                    state=JobState.RUNNING.value,
                    lease_owner=worker,
                    lease_token=token,
                    lease_expires_epoch=current + lease_s,
                    takes=table.c.takes + 1,
                    started_at=utcnow(),
                    message=None,
                )
            )
            if result.rowcount != 1:
                return None
            row = connection.execute(select(table).where(table.c.lease_token == token)).one()
        job = _to_row(row)
        logger.info("Worker %s took job %s (%s, take %d)", worker, job.id, job.model, job.takes)
        return job

    def renew(
        self, job_id: str, token: str, lease_s: float, now: float | None = None
    ) -> LeaseStatus:
        """Extend the lease held with ``token``; report a lost lease or a cancel request."""
        current = time.time() if now is None else now
        table = JobRow.__table__
        with self._transaction("renew a lease") as connection:
            result = connection.execute(
                update(table)
                .where(
                    table.c.id == job_id,
                    table.c.lease_token == token,
                    table.c.state == JobState.RUNNING.value,
                )
                .values(lease_expires_epoch=current + lease_s)
            )
            if result.rowcount != 1:
                return LeaseStatus.LOST
            cancel = connection.execute(
                select(table.c.cancel_requested).where(table.c.id == job_id)
            ).scalar()
        return LeaseStatus.CANCEL_REQUESTED if cancel else LeaseStatus.HELD

    def attach_run(self, job_id: str, token: str, run_id: str) -> None:
        """Record the run a job writes to, so a worker that takes it over resumes that run."""
        table = JobRow.__table__
        with self._transaction("record a job's run") as connection:
            connection.execute(
                update(table)
                .where(table.c.id == job_id, table.c.lease_token == token)
                .values(run_id=run_id)
            )

    def finish(self, job_id: str, token: str, state: JobState, message: str | None = None) -> bool:
        """End the lease held with ``token`` in ``state``; return False if the lease was lost.

        ``interrupted`` queues the job again; final states end it. A take that ends
        cleanly as ``interrupted`` does not count toward ``max_takes``, which limits
        takes whose lease expired.
        """
        table = JobRow.__table__
        values: dict[str, Any] = {"state": state.value, "message": message, "lease_token": None}
        values["lease_expires_epoch"] = None
        if state == JobState.INTERRUPTED:
            values["takes"] = table.c.takes - 1
        if state in FINAL_STATES:
            values["finished_at"] = utcnow()
        with self._transaction("finish a job") as connection:
            result = connection.execute(
                update(table)
                .where(table.c.id == job_id, table.c.lease_token == token)
                .values(**values)
            )
        if result.rowcount != 1:
            logger.warning("Job %s: lease lost before it could be marked %s", job_id, state.value)
            return False
        return True

    def _cancel_abandoned(self, connection: Connection, now: float) -> None:
        """Mark cancelled the running jobs with a cancel request whose lease has expired."""
        table = JobRow.__table__
        result = connection.execute(
            update(table)
            .where(
                table.c.state == JobState.RUNNING.value,
                table.c.cancel_requested.is_(True),
                table.c.lease_expires_epoch < now,
            )
            .values(
                state=JobState.CANCELLED.value,
                finished_at=utcnow(),
                lease_token=None,
                message="cancelled; its worker stopped before it could end the job",
            )
        )
        if result.rowcount:
            logger.info("Marked %d abandoned job(s) cancelled", result.rowcount)

    def _fail_retaken_too_often(self, connection: Connection, expired: Any) -> None:
        table = JobRow.__table__
        result = connection.execute(
            update(table)
            .where(expired, table.c.takes >= self.max_takes)
            .values(
                state=JobState.FAILED.value,
                finished_at=utcnow(),
                lease_token=None,
                message=f"its lease expired {self.max_takes} times: the workers running it "
                "died or hung (out of memory?); the run keeps its stored attempts",
            )
        )
        if result.rowcount:
            logger.warning(
                "Marked %d job(s) failed after %d expired leases", result.rowcount, self.max_takes
            )

    def _sort_key(self, job: JobRow) -> float:
        return job.priority - job.size_penalty - job.submitted_epoch / self.aging_s

    @contextmanager
    def _transaction(self, action: str) -> Iterator[Connection]:
        with self._errors(action), self._engine.begin() as connection:
            yield connection

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except DatabaseError as error:
            raise StoreError(f"Could not {action} in {self.url}: {error.orig}") from None
        except SQLAlchemyError as error:
            raise StoreError(f"Could not {action} in {self.url}: {error}") from None


def _immediate_engine(url: str) -> Engine:
    """Return an engine whose transactions start with ``BEGIN IMMEDIATE``.

    pysqlite's own transaction handling is switched off, so the write lock is
    taken when the transaction begins, not at its first write. This is the
    recipe in SQLAlchemy's pysqlite documentation, in the section
    "Serializable isolation / Savepoints / Transactional DDL".
    """
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _configure(connection: Any, _record: Any) -> None:
        connection.isolation_level = None
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _to_row(row: Any) -> JobRow:
    """Detach a result row into a plain ``JobRow``."""
    return JobRow(**dict(row._mapping))
