"""The model backend interface: load once, generate for batches of chat requests."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

from pydantic import BaseModel, ConfigDict, Field


class ChatRequest(BaseModel):
    """One prompt to generate from: an optional system message and a user message."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    system_prompt: str | None = None


class GenerationConfig(BaseModel):
    """Decoding settings. ``temperature == 0`` means greedy decoding."""

    model_config = ConfigDict(frozen=True)

    max_new_tokens: int = Field(default=128, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int = 0
    batch_size: int = Field(default=32, ge=1, le=512)


class Generation(BaseModel):
    """The model's reply to one request, or the reason there is none."""

    model_config = ConfigDict(frozen=True)

    text: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    """Generation time of this reply: the wall time of each batched forward pass it took part in,
    divided by the number of rows in that pass (one prompt at a time, the whole wall time)."""
    error: str | None = None


class ModelBackend(ABC):
    """A loaded model that turns chat requests into generations."""

    name: str
    """Catalog name of the loaded model."""

    @abstractmethod
    def generate_iter(
        self, requests: Sequence[ChatRequest], config: GenerationConfig
    ) -> Iterator[tuple[int, Generation]]:
        """Yield ``(index into requests, generation)`` as each reply completes.

        The order of yields is the backend's choice (it may sort by length to
        batch well). A request that cannot be served, such as one too long for
        the context, yields a ``Generation`` with ``error`` set instead of
        raising, so the others still complete.
        """

    def generate(
        self, requests: Sequence[ChatRequest], config: GenerationConfig
    ) -> list[Generation]:
        """Return one generation per request, in request order."""
        results: dict[int, Generation] = dict(self.generate_iter(requests, config))
        return [results[index] for index in range(len(requests))]

    def chat(self, prompt: str, system_prompt: str | None = None, max_new_tokens: int = 128) -> str:
        """Return the model's greedy reply to one prompt; raise ``RuntimeError`` on failure."""
        request = ChatRequest(prompt=prompt, system_prompt=system_prompt)
        [generation] = self.generate([request], GenerationConfig(max_new_tokens=max_new_tokens))
        if generation.error is not None:
            raise RuntimeError(generation.error)
        return generation.text

    def describe(self) -> dict[str, str]:
        """Return facts recorded with a run: file hashes, dtype, library versions."""
        return {}

    def close(self) -> None:
        """Release the model's memory."""
