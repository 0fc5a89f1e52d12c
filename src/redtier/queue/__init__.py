"""The job queue: scans submitted to the database and run by workers of a tier.

- :class:`JobQueue` stores jobs in the runs database and hands them to
  workers under renewable leases; its module docstring states the
  priority and aging rule.
- :class:`Worker` takes jobs for one tier and runs each through the same
  scan path as ``redtier scan``, resuming a run that a killed worker left.
"""

from redtier.queue._lease import LeaseKeeper
from redtier.queue._queue import (
    DEFAULT_AGING_S,
    DEFAULT_MAX_TAKES,
    JobNotFoundError,
    JobQueue,
    LeaseStatus,
    default_worker_name,
    size_penalty,
)
from redtier.queue._schema import FINAL_STATES, JobRow, JobState
from redtier.queue._submit import submit_scan
from redtier.queue._worker import Worker, WorkerOptions

__all__ = [
    "DEFAULT_AGING_S",
    "DEFAULT_MAX_TAKES",
    "FINAL_STATES",
    "JobNotFoundError",
    "JobQueue",
    "JobRow",
    "JobState",
    "LeaseKeeper",
    "LeaseStatus",
    "Worker",
    "WorkerOptions",
    "default_worker_name",
    "size_penalty",
    "submit_scan",
]
