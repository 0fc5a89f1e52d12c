"""Read prompt/response pairs collected elsewhere, from CSV or JSON Lines, one row at a time.

The file is streamed, never read whole, so files larger than memory work.
Bytes that are not valid in the file's encoding become U+FFFD. A UTF-8, UTF-16
or UTF-32 byte-order mark is honoured. Lines starting with ``#`` before a CSV
header are skipped (PyRIT's files start with ``# dataset_version=...``).

Columns (CSV) or fields (JSON Lines) are found by name, ignoring case, unless
given: the prompt in ``prompt``, ``objective``, ``goal``, ``question`` and the
like, the response in ``response``, ``assistant_response``, ``completion``,
``output`` and the like. A goal column, when one exists beside the prompt
column, contains the harmful objective that the prompt wraps.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from redtier.errors import ImportFormatError, UnknownNameError

PAIR_FORMATS = ("csv", "jsonl")
"""Formats that ``PairReader`` accepts besides ``auto``."""

PROMPT_COLUMNS = (
    "prompt",
    "objective",
    "goal",
    "question",
    "instruction",
    "user_prompt",
    "query",
    "request",
    "input",
    "behavior",
    "forbidden_prompt",
)
RESPONSE_COLUMNS = (
    "response",
    "assistant_response",
    "completion",
    "output",
    "answer",
    "model_response",
    "model_output",
    "generation",
    "reply",
)
GOAL_COLUMNS = ("goal", "objective", "behavior", "harmful_goal")

_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class Pair:
    """One prompt and the response a model gave to it."""

    row: int
    """1-based number of the record among the data rows; the header, comments and blank lines
    do not count."""
    prompt: str
    response: str
    goal: str
    """The harmful objective: the goal column's value, else the prompt."""
    problem: str | None = None
    """The reason the row cannot be judged (a missing field), else ``None``."""


@dataclass(frozen=True)
class PairColumns:
    """The columns or fields that contain the prompt, the response and the goal."""

    prompt: str
    response: str
    goal: str | None


class PairReader:
    """Streams the pairs of one CSV or JSON Lines file; use it as a context manager.

    ``bytes_read`` and ``size`` report progress. ``columns`` is known after the
    header (CSV) or the first record (JSON Lines) has been read.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fmt: str = "auto",
        prompt_column: str | None = None,
        response_column: str | None = None,
        goal_column: str | None = None,
    ) -> None:
        """Open ``path`` and pick its format.

        Raises:
            UnknownNameError: ``fmt`` is not ``auto``, ``csv`` or ``jsonl``.
            ImportFormatError: the file is missing or unreadable.
        """
        if fmt != "auto" and fmt not in PAIR_FORMATS:
            raise UnknownNameError("pair file format", fmt, ("auto", *PAIR_FORMATS))
        self.path = Path(path)
        self._requested = (prompt_column, response_column, goal_column)
        self._binary = _open_binary(self.path)
        self.size = self.path.stat().st_size
        self._text = io.TextIOWrapper(
            self._binary, encoding=_encoding(self._binary), errors="replace", newline=""
        )
        self.format = fmt if fmt != "auto" else self._detect_format()
        self.columns: PairColumns | None = None

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far, in steps of the read buffer."""
        return self._binary.tell() if not self._binary.closed else self.size

    def __iter__(self) -> Iterator[Pair]:
        if self.format == "csv":
            return self._csv_pairs()
        return self._jsonl_pairs()

    def close(self) -> None:
        """Close the file."""
        self._text.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _detect_format(self) -> str:
        suffix = self.path.suffix.lower()
        if suffix in _JSONL_SUFFIXES:
            return "jsonl"
        if suffix in {".csv", ".tsv"}:
            return "csv"
        start = self._binary.peek(64)[:64].decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
        return "jsonl" if start.startswith("{") else "csv"

    def _csv_pairs(self) -> Iterator[Pair]:
        delimiter = "\t" if self.path.suffix.lower() == ".tsv" else ","
        reader = csv.reader(_skip_leading_comments(self._text), delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                raise ImportFormatError(f"{self.path} is empty. Write a header row, then one row per pair.")
            header = [name.strip() for name in header]
            self.columns = self._choose_columns(header, "column")
            positions = {name: index for index, name in reversed(list(enumerate(header)))}
            number = 0
            for record in reader:
                if not any(field.strip() for field in record):
                    continue  # a blank line is no record, so it gets no row number
                number += 1
                values = {name: record[i] for name, i in positions.items() if i < len(record)}
                yield self._pair(number, values, f"row {number}")
        except csv.Error as error:
            raise ImportFormatError(
                f"{self.path} is not valid CSV at line {reader.line_num}: {error}. Check the quoting, "
                "or pass --format jsonl if the file is JSON Lines."
            ) from error

    def _jsonl_pairs(self) -> Iterator[Pair]:
        number = 0
        for line_number, line in enumerate(self._text, start=1):
            if not line.strip():
                continue
            record = _parse_record(self.path, line_number, line)
            number += 1
            if self.columns is None:
                self.columns = self._choose_columns(list(record), "field")
            yield self._pair(number, record, f"line {line_number}")
        if number == 0:
            raise ImportFormatError(f"{self.path} contains no JSON objects. Write one object per line.")

    def _choose_columns(self, names: Sequence[str], kind: str) -> PairColumns:
        """Resolve the requested or detected prompt, response and goal names against ``names``."""
        prompt_column, response_column, goal_column = self._requested
        prompt = self._find(names, prompt_column, PROMPT_COLUMNS, "prompt", kind, ())
        response = self._find(names, response_column, RESPONSE_COLUMNS, "response", kind, (prompt,))
        if goal_column is not None:
            goal = self._find(names, goal_column, (), "goal", kind, ())
        else:
            goal = _match(names, GOAL_COLUMNS, exclude=(prompt, response))
        return PairColumns(prompt=prompt, response=response, goal=goal)

    def _find(
        self,
        names: Sequence[str],
        requested: str | None,
        candidates: Sequence[str],
        role: str,
        kind: str,
        exclude: Sequence[str],
    ) -> str:
        found = _match(names, (requested,) if requested else candidates, exclude=exclude)
        if found is not None:
            return found
        listed = ", ".join(repr(name) for name in names) or "(none)"
        if requested:
            problem = f"has no {kind} {requested!r} (from --{role}-column)"
        else:
            problem = f"has no {role} {kind}: none of {', '.join(candidates)}"
        raise ImportFormatError(
            f"{self.path} {problem}. The {kind}s are: {listed}. "
            f"Pass --{role}-column NAME with one of them."
        )

    def _pair(self, number: int, values: dict[str, object], where: str) -> Pair:
        assert self.columns is not None
        columns = self.columns
        missing = [name for name in (columns.prompt, columns.response) if name not in values]
        prompt = _as_text(values.get(columns.prompt))
        goal = _as_text(values.get(columns.goal)) if columns.goal else ""
        problem = None
        if missing:
            problem = f"{where} has no {' or '.join(repr(name) for name in missing)}"
        return Pair(
            row=number,
            prompt=prompt,
            response=_as_text(values.get(columns.response)),
            goal=goal.strip() or prompt,
            problem=problem,
        )


def _open_binary(path: Path) -> io.BufferedReader:
    if not path.exists():
        raise ImportFormatError(f"File {path} not found. Check the path.")
    if not path.is_file():
        raise ImportFormatError(f"{path} is not a file. Pass the path of a CSV or JSON Lines file.")
    try:
        return open(path, "rb")
    except OSError as error:
        raise ImportFormatError(f"Failed to read {path}: {error.strerror}.") from error


def _encoding(binary: BinaryIO) -> str:
    """Return the codec named by a UTF-16 or UTF-32 byte-order mark, else UTF-8 (BOM skipped)."""
    start = binary.peek(4)[:4] if isinstance(binary, io.BufferedReader) else b""
    for bom, codec in _BOMS:
        if start.startswith(bom):
            return codec
    return "utf-8-sig"


def _skip_leading_comments(lines: Iterable[str]) -> Iterator[str]:
    """Yield ``lines`` from the first one that is neither blank nor a ``#`` comment."""
    iterator = iter(lines)
    for line in iterator:
        if line.strip() and not line.lstrip().startswith("#"):
            yield line
            break
    yield from iterator


def _match(names: Sequence[str], candidates: Sequence[str], exclude: Sequence[str]) -> str | None:
    """Return the name in ``names`` that equals the first matching candidate, ignoring case."""
    by_lower: dict[str, str] = {}
    for name in names:
        by_lower.setdefault(name.lower(), name)
    for candidate in candidates:
        found = by_lower.get(candidate.lower())
        if found is not None and found not in exclude:
            return found
    return None


def _parse_record(path: Path, line_number: int, line: str) -> dict[str, object]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ImportFormatError(
            f"{path}, line {line_number} is not valid JSON ({error.msg}). Write one JSON object "
            'per line, such as {"prompt": "...", "response": "..."}.'
        ) from error
    if not isinstance(record, dict):
        raise ImportFormatError(
            f'{path}, line {line_number} is not a JSON object. Write {{"prompt": "...", '
            '"response": "..."}.'
        )
    return record


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
