"""Settings of the LLM judge: which model judges outputs, and how it is reached.

The settings live beside :class:`~redtier.probes.Attempt` because an attempt
carries them from the scan plan to the verdict, and ``redtier.detectors``
imports this package, so defining them there would make a circular import.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_NEW_TOKENS = 64
DEFAULT_MAX_OUTPUT_CHARS = 4000


class LlmJudgeSettings(BaseModel):
    """The judge model, either a catalog model or an OpenAI-compatible endpoint, and its limits.

    Exactly one of ``model`` and ``endpoint`` is set. The API key itself is never
    stored: ``api_key_env`` names the environment variable that contains it, read when
    the judge is built.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = None
    """Catalog name of a model loaded through redtier's backends, sandboxed like a scanned model."""
    endpoint: str | None = None
    """Base URL of an OpenAI-compatible API, such as ``http://127.0.0.1:8000/v1``;
    requests go to ``{endpoint}/chat/completions``."""
    api_model: str | None = None
    """Model name sent in each request to ``endpoint``."""
    api_key_env: str | None = None
    """Name of the environment variable that contains the endpoint's API key; none sends no key."""
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0.0, le=3600.0)
    """Seconds to wait for one answer from the endpoint."""
    retries: int = Field(default=1, ge=0, le=5)
    """Further tries after a timeout, a connection failure, HTTP 429 or a 5xx status."""
    max_new_tokens: int = Field(default=DEFAULT_MAX_NEW_TOKENS, ge=8, le=2048)
    """Token budget of the judge's answer."""
    max_output_chars: int = Field(default=DEFAULT_MAX_OUTPUT_CHARS, ge=200, le=200_000)
    """Characters of the judged output shown to the judge; longer outputs are cut."""
    sandbox: str = "auto"
    """Sandbox backend for a catalog judge model, as for ``redtier scan --sandbox``."""
    catalog_file: Path | None = None
    """User catalog that defines ``model``, when it is not built in."""
    cache_dir: Path | None = None
    """Converted-weights cache for ``model``; ``None`` uses the default location."""

    @model_validator(mode="after")
    def _one_source(self) -> LlmJudgeSettings:
        if (self.model is None) == (self.endpoint is None):
            raise ValueError(
                "set exactly one of model (a catalog name, --judge-model) and endpoint "
                "(a base URL, --judge-endpoint)"
            )
        if self.endpoint is not None:
            if not self.endpoint.startswith(("http://", "https://")):
                raise ValueError(
                    f"endpoint {self.endpoint!r} must start with http:// or https://, "
                    "e.g. http://127.0.0.1:8000/v1"
                )
            if not self.api_model:
                raise ValueError("endpoint needs api_model, the model name the API serves "
                                 "(--judge-api-model)")
        elif self.api_model is not None or self.api_key_env is not None:
            raise ValueError(
                "api_model and api_key_env apply only to an endpoint; remove them or pass "
                "--judge-endpoint"
            )
        return self

    def describe(self) -> str:
        """Return the judge as a report names it: the catalog model, or the API model and URL."""
        if self.model is not None:
            return self.model
        return f"{self.api_model} at {self.endpoint}"
