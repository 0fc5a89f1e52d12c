"""The resource limits of one job on a tier, in the shape of the sandbox's limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from redtier.sandbox import Limits
from redtier.tiers._tier import Tier

ADDRESS_SPACE_FACTOR = 4
ADDRESS_SPACE_PAD_BYTES = 4 * 1024**3
"""With the factor, how far the address-space limit exceeds the resident-memory limit."""

LOAD_ALLOWANCE_S = 600.0
"""Wall time a job gets for loading its model, on top of its attempts."""


class JobLimits(BaseModel):
    """Memory and time limits of one job, derived from its tier.

    ``memory_bytes`` and ``wall_timeout_s`` mean what the fields of the same
    names in :class:`redtier.sandbox.Limits` mean, so :meth:`apply_to` can
    hand them to a sandbox.
    """

    model_config = ConfigDict(frozen=True)

    tier: str
    memory_bytes: int = Field(gt=0)
    """Host memory the job may use: the tier's ``memory``."""
    wall_timeout_s: float = Field(gt=0)
    """The whole job: model loading plus every attempt at the tier's attempt timeout."""
    attempt_timeout_s: float = Field(gt=0)

    @classmethod
    def for_job(cls, tier: Tier, attempts: int) -> JobLimits:
        """Return the limits of a job of ``attempts`` attempts on ``tier``."""
        return cls(
            tier=tier.name,
            memory_bytes=tier.memory_bytes,
            wall_timeout_s=LOAD_ALLOWANCE_S + max(attempts, 1) * tier.attempt_timeout_s,
            attempt_timeout_s=tier.attempt_timeout_s,
        )

    def batch_timeout_s(self, rows: int) -> float:
        """Return the wall time allowed for one batch of ``rows`` attempts."""
        return self.attempt_timeout_s * max(rows, 1)

    def apply_to(self, limits: Limits) -> Limits:
        """Return ``limits`` with this job's memory and wall time.

        ``memory_bytes`` becomes the resident-memory cap (the cgroup limit, or
        ``docker --memory``). The address-space limit stays padded, because
        PyTorch reserves several times the memory it touches: it is the larger
        of what ``limits`` allowed and four times the tier's memory plus 4 GiB.
        """
        padded = ADDRESS_SPACE_FACTOR * self.memory_bytes + ADDRESS_SPACE_PAD_BYTES
        return limits.model_copy(
            update={
                "memory_bytes": self.memory_bytes,
                "address_space_bytes": max(limits.address_space_limit(), padded),
                "wall_timeout_s": self.wall_timeout_s,
            }
        )
