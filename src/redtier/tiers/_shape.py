"""The size of a planned scan, as routing and cost estimates need it."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from redtier.backends._transformers import MAX_BATCH_TOKENS
from redtier.probes import Attempt
from redtier.scan import ScanOptions, build_plan, select_probes

CHARS_PER_TOKEN = 1.5
"""A low estimate of characters per token, so prompt lengths are overestimated.

English text averages about 4 characters per token in BPE vocabularies. With
the bundled model's tokenizer, the base64 prompts of the probe library come
to about 1.5 characters per token, chat template included.
"""
TEMPLATE_TOKENS = 40
"""Tokens a chat template adds around the prompt (roles, default system message)."""


class ScanShape(BaseModel):
    """Attempt count and sequence lengths of a planned scan."""

    model_config = ConfigDict(frozen=True)

    attempts: int = Field(ge=0)
    longest_prompt_tokens: int = Field(ge=1)
    """Estimated from characters without a tokenizer; see ``CHARS_PER_TOKEN``."""
    max_new_tokens: int = Field(ge=1)
    batch_size: int = Field(ge=1)

    @classmethod
    def of(cls, options: ScanOptions) -> ScanShape:
        """Build the scan's plan (no model needed) and measure it."""
        return cls.from_plan(build_plan(select_probes(options), options), options)

    @classmethod
    def from_plan(cls, plan: Sequence[Attempt], options: ScanOptions) -> ScanShape:
        """Measure an already built plan."""
        longest = max((len(a.prompt) + len(a.system_prompt or "") for a in plan), default=1)
        return cls(
            attempts=len(plan),
            longest_prompt_tokens=int(longest / CHARS_PER_TOKEN) + TEMPLATE_TOKENS,
            max_new_tokens=options.max_new_tokens,
            batch_size=options.batch_size,
        )

    @property
    def sequence_tokens(self) -> int:
        """Tokens of the longest sequence: prompt and reply."""
        return self.longest_prompt_tokens + self.max_new_tokens

    @property
    def rows_per_batch(self) -> int:
        """Rows in the largest batch: the backend caps padded prompt tokens per batch."""
        return max(1, min(self.batch_size, MAX_BATCH_TOKENS // self.longest_prompt_tokens))

    @property
    def generated_tokens(self) -> int:
        """Upper bound on tokens generated: every reply at its full length."""
        return self.attempts * self.max_new_tokens
