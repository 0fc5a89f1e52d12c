"""Generation in a background thread: order, bounds, errors and stopping."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest

from redtier.backends import ChatRequest, Generation, GenerationConfig, ModelBackend
from redtier.scan._pipeline import BackgroundGenerations


class CountingBackend(ModelBackend):
    """Yields one generation per request, counting how many it has produced."""

    name = "counting"

    def __init__(self, fail_at: int | None = None) -> None:
        self.produced = 0
        self.closed = threading.Event()
        self._fail_at = fail_at

    def generate_iter(
        self, requests: Sequence[ChatRequest], config: GenerationConfig
    ) -> Iterator[tuple[int, Generation]]:
        try:
            for index, request in enumerate(requests):
                if index == self._fail_at:
                    raise RuntimeError(f"model crashed on request {index}")
                self.produced += 1
                yield index, Generation(text=request.prompt.upper(), tokens_out=1)
        finally:
            self.closed.set()

    def describe(self) -> dict[str, str]:
        return {"backend": "counting"}


def requests(count: int) -> list[ChatRequest]:
    return [ChatRequest(prompt=f"prompt {i}") for i in range(count)]


def test_every_generation_arrives_once_in_batches_no_larger_than_asked() -> None:
    backend = CountingBackend()
    with BackgroundGenerations(backend, requests(50), GenerationConfig(), ahead=8) as background:
        batches = list(background.batches(most=4))
    indices = [index for batch in batches for index, _ in batch]
    assert indices == list(range(50))
    assert all(1 <= len(batch) <= 4 for batch in batches)
    assert batches[0][0][1].text == "PROMPT 0"


def test_the_thread_stays_a_bounded_distance_ahead() -> None:
    backend = CountingBackend()
    with BackgroundGenerations(backend, requests(100), GenerationConfig(), ahead=5) as background:
        batches = background.batches(most=1)
        next(batches)
        threading.Event().wait(0.3)
        # One read, five waiting in the queue, one generated and waiting for room.
        assert backend.produced <= 1 + 5 + 1
    assert backend.closed.wait(5), "leaving the block closes the backend's generator"
    assert backend.produced < 100


def test_a_backend_error_reaches_the_reader_after_what_came_before() -> None:
    backend = CountingBackend(fail_at=3)
    seen = []
    with BackgroundGenerations(backend, requests(10), GenerationConfig(), ahead=2) as background:
        with pytest.raises(RuntimeError, match="crashed on request 3"):
            for batch in background.batches(most=10):
                seen.extend(index for index, _ in batch)
    assert seen == [0, 1, 2]


def test_ahead_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ahead=0"):
        BackgroundGenerations(CountingBackend(), requests(1), GenerationConfig(), ahead=0)
