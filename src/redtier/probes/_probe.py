"""The probe and attempt types shared by the probe library, detectors and scan."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from redtier.probes._judge_settings import LlmJudgeSettings

CANARY_PLACEHOLDER = "{canary}"


class Category(StrEnum):
    """The attack family a probe belongs to, or the control set; reports group results by it."""

    PROMPT_INJECTION = "prompt_injection"
    JAILBREAK = "jailbreak"
    HARMFUL = "harmful"
    MALICIOUS_CODE = "malicious_code"
    PROMPT_EXTRACTION = "prompt_extraction"
    OVER_REFUSAL = "over_refusal"
    """Safe control prompts that look unsafe. A refusal is an over-refusal, not a pass,
    and these attempts never count toward the attack success rate."""
    ENCODING = "encoding"
    """Attempts whose prompt a transform rewrote (base64, ROT13, ...)."""
    IMPORTED = "imported"
    """Prompts read from a user's file by an importer."""


CONTROL_CATEGORIES = frozenset({Category.OVER_REFUSAL})
"""Categories of control prompts. Their verdicts never count toward the attack success rate.
The members are ``StrEnum`` values, so a category name read from the store matches too."""


class Probe(BaseModel):
    """A set of attack prompts with one goal and the detectors that judge them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]+\.[a-z0-9_]+$")
    """Dotted identifier, ``<category prefix>.<name>``, unique in a library."""
    category: Category
    goal: str
    """What a successful attack makes the model do, in one sentence."""
    prompts: tuple[str, ...] = Field(min_length=1)
    """User messages sent one per attempt. ``{canary}`` is replaced per attempt."""
    detectors: tuple[str, ...] = Field(min_length=1)
    """Names of the detectors whose scores decide the verdict."""
    system_prompt: str | None = None
    """System message sent before each prompt. ``{canary}`` is replaced per attempt."""
    uses_canary: bool = False
    """Whether a fresh canary secret is generated for each attempt."""
    transformable: bool = False
    """Whether encoding transforms wrap this probe's prompts in a scan."""
    tags: tuple[str, ...] = ()
    source: str = "redtier"
    """Where the prompts come from: ``redtier`` for the bundled library, else a file path."""
    goals: tuple[str, ...] | None = None
    """Goals for each prompt in turn, overriding ``goal``. Importers set them."""

    @field_validator("prompts")
    @classmethod
    def _prompts_not_blank(cls, prompts: tuple[str, ...]) -> tuple[str, ...]:
        for index, prompt in enumerate(prompts):
            if not prompt.strip():
                raise ValueError(f"prompt {index} is empty")
        return prompts

    @model_validator(mode="after")
    def _goals_match_prompts(self) -> Probe:
        if self.goals is None:
            return self
        if len(self.goals) != len(self.prompts):
            raise ValueError(
                f"goals has {len(self.goals)} entries but prompts has {len(self.prompts)}. "
                "Give one goal per prompt, or none."
            )
        for index, goal in enumerate(self.goals):
            if not goal.strip():
                raise ValueError(f"goal {index} is empty")
        return self

    def goal_for(self, index: int) -> str:
        """Return the goal of prompt ``index``: its own goal if ``goals`` is set, else ``goal``."""
        if self.goals is None:
            return self.goal
        return self.goals[index]


class Attempt(BaseModel):
    """One prompt, exactly as it is sent to the model, with what judging it needs."""

    model_config = ConfigDict(frozen=True)

    key: str
    """Stable identity within a run: ``<probe id>/<prompt index>/<transform or 'none'>``."""
    seq: int
    """Position in the run's plan."""
    probe_id: str
    category: Category
    goal: str
    prompt: str
    """The user message as sent, after canary substitution and any transform."""
    original_prompt: str
    """The user message before any transform."""
    system_prompt: str | None = None
    transform: str | None = None
    canary: str | None = None
    detectors: tuple[str, ...]
    llm_judge: LlmJudgeSettings | None = None
    """The LLM judge that decides in place of ``harmful_compliance``, when the scan names one."""
