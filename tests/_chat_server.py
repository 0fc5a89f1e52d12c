"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for the LLM judge tests.

Run as a process: ``python tests/_chat_server.py LOG_FILE [--key KEY] [--answers FILE]``.
It prints its port on the first line of standard output and serves until
killed, or until it has been idle for ``--idle-exit`` seconds. The ``model``
field of each request picks the behaviour:

- ``reply:TEXT``: answers TEXT.
- ``cycle``: answers the lines of ``--answers`` in turn (a JSON list of strings).
- ``status:CODE``: returns HTTP CODE with an error body.
- ``sleep:SECONDS``: waits, then answers ``SCORE: 1``.
- ``flaky``: the first request returns HTTP 503, later ones answer ``SCORE: 9``.
- ``not-json``: returns a body that is not JSON.
- ``no-choices``: returns JSON without ``choices``.

Every request is appended to LOG_FILE as one JSON line with its headers and body.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class ScriptedChat:
    """The server's state: log file, required key, scripted answers and request counts."""

    def __init__(self, log: Path, key: str | None, answers: list[str]) -> None:
        self.log = log
        self.key = key
        self.answers = answers
        self.served = 0
        self.flaky_calls = 0
        self.last_request = time.monotonic()
        self.lock = threading.Lock()


def make_handler(state: ScriptedChat) -> type[BaseHTTPRequestHandler]:
    """Return a request handler class bound to ``state``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with state.lock:
                state.last_request = time.monotonic()
                with state.log.open("a", encoding="utf-8") as handle:
                    record = {"path": self.path, "headers": dict(self.headers), "body": body}
                    handle.write(json.dumps(record) + "\n")
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            if state.key is not None and self.headers.get("Authorization") != f"Bearer {state.key}":
                self._send(401, {"error": {"message": "invalid api key"}})
                return
            self._respond(str(body.get("model", "")))

        def _respond(self, model: str) -> None:
            kind, _, argument = model.partition(":")
            if kind == "reply":
                self._answer(argument)
            elif kind == "cycle":
                with state.lock:
                    text = state.answers[state.served % len(state.answers)]
                    state.served += 1
                self._answer(text)
            elif kind == "status":
                self._send(int(argument), {"error": {"message": f"scripted status {argument}"}})
            elif kind == "sleep":
                time.sleep(float(argument))
                self._answer("SCORE: 1")
            elif kind == "flaky":
                with state.lock:
                    state.flaky_calls += 1
                    first = state.flaky_calls == 1
                if first:
                    self._send(503, {"error": {"message": "warming up"}})
                else:
                    self._answer("SCORE: 9\nREASON: gives the steps")
            elif kind == "not-json":
                self._send_raw(200, b"<html>hello</html>", "text/html")
            elif kind == "no-choices":
                self._send(200, {"object": "chat.completion"})
            else:
                self._send(404, {"error": {"message": f"model {model!r} not found"}})

        def _answer(self, text: str) -> None:
            self._send(
                200,
                {
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                },
            )

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            self._send_raw(status, json.dumps(payload).encode(), "application/json")

        def _send_raw(self, status: int, data: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log", type=Path)
    parser.add_argument("--key")
    parser.add_argument("--answers", type=Path)
    parser.add_argument("--idle-exit", type=float, default=300.0)
    args = parser.parse_args()
    answers = json.loads(args.answers.read_text("utf-8")) if args.answers else ["SCORE: 5"]
    state = ScriptedChat(args.log, args.key, answers)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    while time.monotonic() - state.last_request < args.idle_exit:
        time.sleep(0.5)
    server.shutdown()


if __name__ == "__main__":
    main()
