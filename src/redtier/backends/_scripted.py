"""A scripted model for unit tests: replies come from rules, not weights."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from redtier.backends._base import ChatRequest, Generation, GenerationConfig, ModelBackend

Responder = Callable[[ChatRequest], str]


class ScriptedBackend(ModelBackend):
    """Replies with ``responder(request)``; a responder that raises becomes an error generation.

    ``calls`` records every request, so tests can check what was sent and
    that nothing was sent twice.
    """

    def __init__(self, responder: Responder | str = "I can't help with that.") -> None:
        self.name = "scripted"
        self._responder: Responder = (
            (lambda _request, reply=responder: reply) if isinstance(responder, str) else responder
        )
        self.calls: list[ChatRequest] = []

    def generate_iter(
        self, requests: Sequence[ChatRequest], config: GenerationConfig
    ) -> Iterator[tuple[int, Generation]]:
        for index, request in enumerate(requests):
            self.calls.append(request)
            try:
                text = self._responder(request)
            except Exception as error:  # noqa: BLE001 - a scripted failure becomes data
                yield index, Generation(error=f"{type(error).__name__}: {error}")
                continue
            yield index, Generation(
                text=text, tokens_in=len(request.prompt.split()), tokens_out=len(text.split())
            )

    def describe(self) -> dict[str, str]:
        return {"backend": "scripted"}
