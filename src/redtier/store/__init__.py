"""The result store: runs and attempts, committed one attempt at a time."""

from redtier.store._schema import AttemptRow, RunCostRow, RunRow
from redtier.store._store import Store, utcnow

__all__ = ["AttemptRow", "RunCostRow", "RunRow", "Store", "utcnow"]
