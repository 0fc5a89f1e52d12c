"""Generate in a background thread while the scan's thread judges and stores.

Judging takes the scan's thread: detectors run, code blocks execute in a
sandbox, and attempts are committed to the database. If that happened
between batches, the model would sit idle meanwhile. Here a thread pulls
generations from the backend into a bounded queue, and the scan takes
whatever has arrived, all at once, so detectors can work on several outputs
in one pass. The bound keeps memory flat however long the scan is.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Final

from redtier.backends import ChatRequest, Generation, GenerationConfig, ModelBackend

logger = logging.getLogger(__name__)

_DONE: Final = object()
"""Sent by the thread after the last generation."""


class _Failure:
    """Carries an exception from the generating thread to the scan's thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class BackgroundGenerations:
    """Iterate over batches of ``(index, Generation)`` that a thread generates ahead of the reader.

    Use it as a context manager: leaving the block tells the thread to stop
    after the generation in hand, so a scan that stops early does not keep
    the model busy. Errors raised by the backend are raised again in the
    reading thread.
    """

    def __init__(
        self,
        backend: ModelBackend,
        requests: Sequence[ChatRequest],
        config: GenerationConfig,
        *,
        ahead: int,
    ) -> None:
        if ahead < 1:
            raise ValueError(f"Invalid ahead={ahead}: the thread must be allowed at least 1 generation.")
        self._backend = backend
        self._requests = requests
        self._config = config
        self._queue: queue.Queue[object] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._generate, name="redtier-generate", daemon=True)

    def __enter__(self) -> BackgroundGenerations:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        self._stop.set()
        if exc_type is KeyboardInterrupt:
            return  # the process is on its way out; do not wait for the model
        # Wait until the thread has let go of the backend, which the caller may
        # reuse or close next; empty the queue so a thread waiting for room sees the stop.
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                continue

    def batches(self, most: int) -> Iterator[list[tuple[int, Generation]]]:
        """Yield what has arrived, up to ``most`` at a time, waiting only when nothing has."""
        while True:
            batch: list[tuple[int, Generation]] = []
            item = self._queue.get()
            while True:
                if item is _DONE:
                    if batch:
                        yield batch
                    return
                if isinstance(item, _Failure):
                    if batch:
                        yield batch
                    raise item.error
                batch.append(item)  # type: ignore[arg-type]
                if len(batch) >= most:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            yield batch

    def _generate(self) -> None:
        generations = self._backend.generate_iter(self._requests, self._config)
        try:
            for item in generations:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as error:  # handed to the reader, which raises it
            if not self._stop.is_set():
                self._put(_Failure(error))
            else:
                logger.debug("Generation ended after the scan stopped: %s", error)
        finally:
            generations.close()

    def _put(self, item: object) -> bool:
        """Queue ``item``, waiting for room; return False once the reader has stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False
