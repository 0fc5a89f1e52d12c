"""The result store: runs and attempts in an SQL database through SQLAlchemy.

Each attempt is committed on its own, so a crash loses at most the attempts
still being generated. A unique (run, key) constraint makes storing an attempt
idempotent: a resumed run can never store one twice.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from redtier.errors import RunNotFoundError, StoreError
from redtier.store._owner import OWNER_FACT, current_owner, is_abandoned, live_pid_elsewhere
from redtier.store._schema import AttemptRow, Base, RunCostRow, RunRow

logger = logging.getLogger(__name__)

RUNNING = "running"

DEFAULT_BUSY_TIMEOUT_S = 10.0
"""How long SQLite waits for another process's lock before giving up."""


def utcnow() -> datetime:
    """Return the current UTC time without tzinfo, as stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


class Store:
    """Runs and attempts in one database."""

    def __init__(self, url: str, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self._engine = _create_engine(url, busy_timeout_s)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        with self._errors("open"):
            create_tables(self._engine, Base.metadata)

    @property
    def location(self) -> str:
        """The database file for SQLite, else the URL without its password."""
        url = make_url(self.url)
        if url.get_backend_name() == "sqlite" and url.database:
            return url.database
        return url.render_as_string(hide_password=True)

    def create_run(
        self, model: str, options: dict[str, Any], facts: dict[str, Any], planned: int
    ) -> RunRow:
        """Insert a new run in status ``running`` and return it."""
        row = RunRow(
            id=secrets.token_hex(6),
            model=model,
            status=RUNNING,
            options=options,
            facts={**facts, OWNER_FACT: current_owner()},
            planned=planned,
            started_at=utcnow(),
        )
        with self._session("create a run") as session:
            session.add(row)
        return row

    def get_run(self, run_id: str) -> RunRow:
        """Return the run whose id is ``run_id`` or starts with it."""
        with self._session("read runs") as session:
            query = select(RunRow).where(RunRow.id.startswith(run_id, autoescape=True))
            rows = session.scalars(query).all()
        exact = [row for row in rows if row.id == run_id]
        if exact:
            return exact[0]
        if len(rows) == 1 and run_id:
            return rows[0]
        if len(rows) > 1:
            raise RunNotFoundError(
                f"Run id prefix {run_id!r} matches {len(rows)} runs: give more characters."
            )
        raise RunNotFoundError(
            f"Run {run_id!r} not found in {self.location}. `redtier runs` lists the stored runs."
        )

    def list_runs(self) -> list[RunRow]:
        """Return every run, newest first."""
        with self._session("read runs") as session:
            return list(session.scalars(select(RunRow).order_by(RunRow.started_at.desc())).all())

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Set a run's status; a final status also sets its end time."""
        with self._session("update a run") as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise RunNotFoundError(f"Run {run_id!r} not found in {self.location}.")
            row.status = status
            row.error = error
            row.finished_at = None if status == RUNNING else utcnow()
            if status == RUNNING:
                row.facts = {**row.facts, OWNER_FACT: current_owner()}

    def live_owner_pid(self, run: RunRow) -> int | None:
        """Return the pid of another process on this host that is running ``run`` now, else None."""
        if run.status != RUNNING or not isinstance(run.facts, dict):
            return None
        return live_pid_elsewhere(run.facts.get(OWNER_FACT))

    def mark_abandoned_runs(self) -> list[str]:
        """Mark ``interrupted`` every running run whose process on this host has died; return their ids.

        Such a run was killed (SIGKILL, out of memory, a lost machine) before
        it could record why. Its stored attempts are kept, and
        ``redtier scan --resume`` finishes it.
        """
        marked = []
        with self._session("update abandoned runs") as session:
            for row in session.scalars(select(RunRow).where(RunRow.status == RUNNING)).all():
                owner = row.facts.get(OWNER_FACT) if isinstance(row.facts, dict) else None
                if is_abandoned(owner):
                    row.status = "interrupted"
                    row.error = (
                        f"the process running it (pid {owner['pid']}) ended without recording why, "
                        f"most likely killed; `redtier scan --resume {row.id}` finishes it"
                    )
                    row.finished_at = utcnow()
                    marked.append(row.id)
        return marked

    def update_facts(self, run_id: str, facts: dict[str, Any]) -> None:
        """Merge ``facts`` into the run's recorded facts."""
        with self._session("update a run") as session:
            row = session.get(RunRow, run_id)
            if row is not None:
                row.facts = {**row.facts, **facts}

    def add_attempt(self, row: AttemptRow) -> bool:
        """Commit one attempt; return False if the run already has an attempt with its key."""
        try:
            with self._session("store an attempt") as session:
                session.add(row)
        except IntegrityError:
            logger.warning(
                "Attempt %s of run %s is already stored; kept the first", row.key, row.run_id
            )
            return False
        return True

    def done_keys(self, run_id: str) -> set[str]:
        """Return the keys of the attempts already stored for a run."""
        with self._session("read attempts") as session:
            return set(session.scalars(select(AttemptRow.key).where(AttemptRow.run_id == run_id)))

    def count_attempts(self, run_id: str) -> int:
        """Return how many attempts a run has stored."""
        with self._session("read attempts") as session:
            query = select(func.count()).select_from(AttemptRow).where(AttemptRow.run_id == run_id)
            return int(session.scalar(query) or 0)

    def verdict_counts(self, run_id: str) -> dict[tuple[str, str], int]:
        """Return the number of attempts per (category, verdict) for a run."""
        query = (
            select(AttemptRow.category, AttemptRow.verdict, func.count())
            .where(AttemptRow.run_id == run_id)
            .group_by(AttemptRow.category, AttemptRow.verdict)
        )
        with self._session("read attempts") as session:
            return {
                (category, verdict): count for category, verdict, count in session.execute(query)
            }

    def iter_attempts(self, run_id: str, verdict: str | None = None) -> Iterator[AttemptRow]:
        """Yield a run's attempts in plan order, optionally only those with ``verdict``."""
        query = select(AttemptRow).where(AttemptRow.run_id == run_id).order_by(AttemptRow.seq)
        if verdict is not None:
            query = query.where(AttemptRow.verdict == verdict)
        with self._session("read attempts") as session:
            yield from session.scalars(query.execution_options(yield_per=500))

    def save_cost(self, row: RunCostRow) -> None:
        """Insert or replace the cost record of ``row.run_id``."""
        with self._session("store a run's cost") as session:
            session.merge(row)

    def get_cost(self, run_id: str) -> RunCostRow | None:
        """Return a run's cost record, or None for a run not priced on a tier."""
        with self._session("read a run's cost") as session:
            return session.get(RunCostRow, run_id)

    def tokens_out(self, run_id: str) -> int:
        """Return the number of tokens generated in a run's stored attempts."""
        query = select(func.coalesce(func.sum(AttemptRow.tokens_out), 0)).where(
            AttemptRow.run_id == run_id
        )
        with self._session("read attempts") as session:
            return int(session.scalar(query) or 0)

    def close(self) -> None:
        """Close the database connections."""
        self._engine.dispose()

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        with self._errors(action), self._sessions.begin() as session:
            yield session

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except IntegrityError:
            raise
        except DatabaseError as error:
            raise StoreError(_explain(error, action, self.location, self.busy_timeout_s)) from None
        except SQLAlchemyError as error:
            raise StoreError(f"Could not {action} in {self.location}: {error}") from None


def create_tables(engine: Engine, metadata: MetaData, attempts: int = 5) -> None:
    """Create missing tables, tolerating another process that creates them at the same moment.

    Two processes opening a new SQLite file can both see a table missing and
    both issue CREATE TABLE; the second then fails with "already exists",
    and a retry finds the table in place.
    """
    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            return
        except OperationalError as error:
            if "already exists" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def make_database_folder(url: str) -> None:
    """Create the folder that an SQLite file URL points into, if it is missing.

    Raises:
        StoreError: the folder cannot be created.
    """
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    folder = Path(database).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(
            f"Cannot create the database folder {str(folder)!r}: {error.strerror}. "
            "Choose another location with --db PATH or REDTIER_DB."
        ) from None


def _create_engine(url: str, busy_timeout_s: float) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(url, pool_pre_ping=True)
        except ModuleNotFoundError as error:
            raise StoreError(
                f"The database URL {parsed.render_as_string(hide_password=True)!r} needs the Python "
                f"driver {error.name!r}, which is not installed. Install it in redtier's "
                f"environment (for PostgreSQL: pip install 'psycopg[binary]'), or use an SQLite "
                "file path with --db."
            ) from None
    make_database_folder(url)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _configure(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    return engine


def _explain(error: DatabaseError, action: str, location: str, busy_timeout_s: float) -> str:
    message = str(error.orig)
    if "locked" in message or "busy" in message:
        return (
            f"Could not {action}: the database {location} is locked by another process "
            f"(waited {busy_timeout_s:g} s). Wait for the other redtier command "
            "to finish, or use another database with --db PATH."
        )
    if "readonly" in message or "read-only" in message:
        return (
            f"Could not {action}: the database {location} is read-only. Make the file and its "
            "folder writable, or write to another database with --db PATH."
        )
    if "unable to open" in message:
        return (
            f"Could not {action}: the database {location} cannot be opened. Check that its "
            "folder exists and is writable, or use --db PATH."
        )
    if "malformed" in message or "not a database" in message:
        return (
            f"Could not {action}: {location} is not a valid SQLite database ({message}). "
            "Point --db at another file; keep this one for recovery."
        )
    return f"Could not {action} in {location}: {message}"
