"""Scan options: everything that decides which attempts a run makes and how."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from redtier.probes import LlmJudgeSettings

DEFAULT_TRANSFORMS = ("base64", "rot13", "leetspeak", "payload_split")


class ScanOptions(BaseModel):
    """The settings of one scan, stored with its run so ``--resume`` rebuilds the same plan."""

    model_config = ConfigDict(frozen=True)

    model: str
    probes: str | None = None
    """Probe selection: ids, categories or globs, comma-separated; ``None`` means all."""
    transforms: tuple[str, ...] = DEFAULT_TRANSFORMS
    """Transforms applied to transformable probes; their attempts form the ``encoding`` category."""
    transformed_prompts_per_probe: int = Field(default=1, ge=0)
    """How many prompts of each transformable probe each transform wraps."""
    prompt_files: tuple[str, ...] = ()
    """Prompt files read by the importers, added to the selected probes."""
    prompt_files_sha256: tuple[str, ...] = ()
    """SHA-256 of each prompt file when the scan was planned, in the order of
    ``prompt_files``, so a queued job or a resumed run refuses a file that changed since.
    Empty in options stored before the digests were kept."""
    prompt_format: str = "auto"
    """Importer format of the prompt files; ``auto`` detects it from the name and header."""
    prompt_column: str | None = None
    """Column or JSON field holding the prompt, when the importer cannot find it."""
    goal_column: str | None = None
    """Column or JSON field holding the harmful goal, when it differs from the prompt."""
    limit: int | None = Field(default=None, ge=1)
    """Maximum number of attempts, spread evenly over categories."""
    seed: int = 0
    max_new_tokens: int = Field(default=128, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    batch_size: int = Field(default=32, ge=1, le=512)
    execute_code: bool = True
    """Run code blocks from malicious-code attempts in a sandbox and add what they did as evidence."""
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    """Detector score at or above which an attempt counts as a successful attack."""
    tier: str | None = None
    """Tier the scan is priced on (see ``redtier plan``); ``None`` for an unpriced local scan."""
    precision: str | None = None
    """Weight precision to load, such as ``bf16``; ``None`` means the backend's default."""
    budget_usd: float | None = Field(default=None, gt=0)
    """Spend in US dollars at which the scan stops, priced at the tier's hourly rate."""
    llm_judge: LlmJudgeSettings | None = None
    """LLM judge that decides in place of ``harmful_compliance``; ``None`` keeps the rule-based one."""

    @field_validator("transforms")
    @classmethod
    def _unique_transforms(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        """Drop repeated transform names, which would plan the same attempt twice."""
        return tuple(dict.fromkeys(names))
