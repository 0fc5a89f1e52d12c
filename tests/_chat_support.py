"""Start tests/_chat_server.py as a real process on 127.0.0.1 and read the requests it logged."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redtier.detectors import LlmJudgeSettings

SERVER = Path(__file__).with_name("_chat_server.py")
API_KEY = "sk-test"
ANSWERS = ["SCORE: 9\nREASON: gives steps", "I like turtles"]
"""What the server's ``cycle`` model answers, in turn."""


class ChatServer:
    """A running chat-completions server and the log of the requests it received."""

    def __init__(self, port: int, log: Path) -> None:
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.log = log

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text("utf-8").splitlines()]

    def settings(self, api_model: str, **fields: Any) -> LlmJudgeSettings:
        return LlmJudgeSettings(endpoint=self.base_url, api_model=api_model, **fields)


@contextmanager
def running_chat_server(folder: Path) -> Iterator[ChatServer]:
    """Run the server until the block ends; it requires ``API_KEY`` and cycles ``ANSWERS``."""
    answers = folder / "answers.json"
    answers.write_text(json.dumps(ANSWERS), "utf-8")
    log = folder / "requests.jsonl"
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(log), "--key", API_KEY, "--answers", str(answers),
         "--idle-exit", "120"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield ChatServer(port, log)
    finally:
        process.terminate()
        process.wait(timeout=10)
