"""The model worker: loads one model and serves generation requests over a pipe.

Started inside a sandbox by :class:`~redtier.backends.SandboxedBackend` as
``python -m redtier.backends._worker``. Messages are JSON, one per line. The
first line on stdin is the load request::

    {"entry": {...ModelEntry...}, "weights": "/path", "sha256": "...",
     "cache_dir": "/path", "runtime": "transformers", "precision": "fp32", "threads": 2}

The worker answers ``{"ready": true, "facts": {...}}`` (or ``{"fatal": "..."}``
and exits). Each later line is a generation request::

    {"requests": [{"prompt": "...", "system_prompt": null}, ...], "config": {...}}

answered by ``{"started": [i, ...]}`` lines as requests enter the batch, one
``{"index": i, "generation": {...}}`` line per request as soon as its reply
ends, and a final ``{"done": true}``. File descriptor 1 is pointed at stderr before
anything is imported, so library output cannot corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any


def _protocol_stream() -> IO[str]:
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", buffering=1, encoding="utf-8")


def _send(stream: IO[str], message: dict[str, Any]) -> None:
    stream.write(json.dumps(message, ensure_ascii=False) + "\n")
    stream.flush()


def _load(message: dict[str, Any]) -> Any:
    from redtier.backends._runtime import Runtime, load_from_weights
    from redtier.catalog import ModelEntry, Precision

    return load_from_weights(
        ModelEntry.model_validate(message["entry"]),
        Path(message["weights"]),
        message["sha256"],
        Path(message["cache_dir"]),
        Runtime(message.get("runtime", Runtime.TRANSFORMERS.value)),
        precision=Precision(message.get("precision", "fp32")),
        threads=message.get("threads"),
    )


def _serve(backend: Any, message: dict[str, Any], stream: IO[str]) -> None:
    from redtier.backends._base import ChatRequest, GenerationConfig

    requests = [ChatRequest.model_validate(r) for r in message["requests"]]
    config = GenerationConfig.model_validate(message["config"])

    def started(indices: list[int]) -> None:
        _send(stream, {"started": indices})

    for index, generation in backend.generate_stream(requests, config, on_start=started):
        _send(stream, {"index": index, "generation": generation.model_dump()})
    _send(stream, {"done": True})


def main() -> None:
    """Load the model named in the first message, then serve requests until stdin closes."""
    stream = _protocol_stream()
    first = sys.stdin.readline()
    if not first:
        return
    try:
        backend = _load(json.loads(first))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
        _send(stream, {"fatal": f"{type(error).__name__}: {error}"})
        return
    _send(stream, {"ready": True, "facts": backend.describe()})
    for line in sys.stdin:
        if line.strip():
            _serve(backend, json.loads(line), stream)


if __name__ == "__main__":
    main()
