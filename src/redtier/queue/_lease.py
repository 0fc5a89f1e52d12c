"""Keep a job's lease alive from a background thread while the main thread scans."""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Self

from redtier.errors import StoreError
from redtier.queue._queue import JobQueue, LeaseStatus

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews a lease every third of its length until stopped.

    The thread opens its own connection to the queue. ``lost`` is set when
    another worker took the job because the lease expired first.
    ``cancel_requested`` is set when ``redtier cancel`` requested a stop. The
    worker checks both after every stored attempt.
    """

    def __init__(self, queue_url: str, job_id: str, token: str, lease_s: float) -> None:
        self.job_id = job_id
        self.lost = threading.Event()
        self.cancel_requested = threading.Event()
        self._queue_url = queue_url
        self._token = token
        self._lease_s = lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        queue = JobQueue(self._queue_url)
        try:
            while not self._stop.wait(self._lease_s / 3):
                self._renew(queue)
                if self.lost.is_set():
                    return
        finally:
            queue.close()

    def _renew(self, queue: JobQueue) -> None:
        try:
            status = queue.renew(self.job_id, self._token, self._lease_s)
        except StoreError as error:
            logger.warning(
                "Could not renew the lease of job %s, will retry: %s", self.job_id, error
            )
            return
        if status is LeaseStatus.LOST:
            logger.warning("Lost the lease of job %s: another worker has taken it", self.job_id)
            self.lost.set()
        elif status is LeaseStatus.CANCEL_REQUESTED and not self.cancel_requested.is_set():
            logger.info("Job %s was cancelled; stopping after the attempt in hand", self.job_id)
            self.cancel_requested.set()
