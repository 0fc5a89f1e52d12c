"""Read prompt/response pairs collected elsewhere, from CSV or JSON Lines, one row at a time.

The file is streamed, never read whole, so files larger than memory work; the
path ``-`` reads standard input. Bytes that are not valid in the file's encoding
become U+FFFD (``REPLACEMENT``), which a caller can count to warn about the
wrong encoding. A UTF-8, UTF-16 or UTF-32 byte-order mark is honoured. Lines
starting with ``#`` before a CSV header are skipped (PyRIT's files start with
``# dataset_version=...``).

A record that cannot be judged (a missing or empty field, or a JSON Lines line
after the first that is not a JSON object) becomes a pair with a ``problem``, so
one bad line does not stop the rest of the file.

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
import sys
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
REPLACEMENT = "\ufffd"
"""The character that stands for bytes that could not be decoded."""
STDIN = "-"
"""The path that names standard input."""
MAX_CSV_FIELD_CHARS = 1 << 28
"""Largest CSV cell accepted, in characters; the csv module's own limit is 128 KiB."""

_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def has_unbalanced_quotes(quote_count: int) -> bool:
    """Return whether CSV text with ``quote_count`` double quotes is unbalanced.

    Valid CSV has an even number. An odd one most often means a quoted cell that
    is never closed, and the csv module accepts it by joining every row after it
    into that cell. It can also be a lone quote inside an unquoted cell.
    """
    return quote_count % 2 == 1


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
        self._stdin = str(path) == STDIN
        self._binary = _stdin_binary() if self._stdin else _open_binary(self.path)
        self.size: int | None = None if self._stdin else self.path.stat().st_size
        self._text = io.TextIOWrapper(
            self._binary, encoding=_encoding(self._binary), errors="replace", newline=""
        )
        self.format = fmt if fmt != "auto" else self._detect_format()
        self.columns: PairColumns | None = None
        self._quotes = 0

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far, in steps of the read buffer."""
        if self._stdin:
            return 0
        return self._binary.tell() if not self._binary.closed else self.size or 0

    @property
    def unbalanced_quotes(self) -> bool:
        """Whether the CSV read so far has an odd number of double quotes."""
        return self.format == "csv" and has_unbalanced_quotes(self._quotes)

    @property
    def name(self) -> str:
        """The file's path, or "standard input"."""
        return "standard input" if self._stdin else str(self.path)

    def __iter__(self) -> Iterator[Pair]:
        if self.format == "csv":
            return self._csv_pairs()
        return self._jsonl_pairs()

    def close(self) -> None:
        """Close the file; standard input is left open."""
        if self._stdin:
            self._text.detach()
            return
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
        suffix = "" if self._stdin else self.path.suffix.lower()
        if suffix in _JSONL_SUFFIXES:
            return "jsonl"
        if suffix in {".csv", ".tsv"}:
            return "csv"
        start = self._binary.peek(64)[:64].decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
        return "jsonl" if start.startswith("{") else "csv"

    def _csv_pairs(self) -> Iterator[Pair]:
        delimiter = "\t" if not self._stdin and self.path.suffix.lower() == ".tsv" else ","
        # The limit is process-wide; raising it only lets longer cells through.
        csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_FIELD_CHARS))
        lines = self._counting_quotes(_skip_leading_comments(self._text))
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                raise ImportFormatError(f"{self.name} is empty. Write a header row, then one row per pair.")
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
                f"{self.name} is not valid CSV at line {reader.line_num}: {error}. Check the "
                "quoting, or pass --format jsonl if the file is JSON Lines."
            ) from error

    def _counting_quotes(self, lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            self._quotes += line.count('"')
            yield line

    def _jsonl_pairs(self) -> Iterator[Pair]:
        number = 0
        for line_number, line in enumerate(self._text, start=1):
            if not line.strip():
                continue
            where = f"line {line_number}"
            record = _parse_record(line)
            if isinstance(record, str):
                if self.columns is None:
                    # The first record decides the fields; without one, this is not JSON Lines.
                    raise ImportFormatError(
                        f"{self.name}, {where} {record}. Write one JSON object per line, such as "
                        '{"prompt": "...", "response": "..."}, or pass --format csv.'
                    )
                number += 1
                yield Pair(row=number, prompt="", response="", goal="", problem=f"{where} {record}")
                continue
            number += 1
            if self.columns is None:
                self.columns = self._choose_columns(list(record), "field")
            yield self._pair(number, _by_column(record, self.columns), where)
        if number == 0:
            raise ImportFormatError(f"{self.name} contains no JSON objects. Write one object per line.")

    def _choose_columns(self, names: Sequence[str], kind: str) -> PairColumns:
        """Resolve the requested or detected prompt, response and goal names against ``names``."""
        prompt_column, response_column, goal_column = self._requested
        if prompt_column and response_column and prompt_column.lower() == response_column.lower():
            raise ImportFormatError(
                f"--prompt-column and --response-column both name {prompt_column!r}. The prompt "
                f"and the response must come from different {kind}s."
            )
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
            f"{self.name} {problem}. The {kind}s are: {listed}. "
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
        elif not prompt.strip() and not goal.strip():
            problem = f"{where} has an empty {columns.prompt!r}, so there is no goal to judge against"
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


def _parse_record(line: str) -> dict[str, object] | str:
    """Return the JSON object on ``line``, or what is wrong with it, worded to follow "line N"."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return f"is not valid JSON ({error.msg})"
    if not isinstance(record, dict):
        return f"is a JSON {type(record).__name__}, not an object"
    return record


def _by_column(record: dict[str, object], columns: PairColumns) -> dict[str, object]:
    """Return ``record``'s values under the chosen column names, matching names ignoring case."""
    lowered: dict[str, object] = {}
    for name, value in record.items():
        lowered.setdefault(name.lower(), value)
    chosen = (columns.prompt, columns.response, columns.goal)
    return {
        name: record[name] if name in record else lowered[name.lower()]
        for name in chosen
        if name is not None and (name in record or name.lower() in lowered)
    }


def _stdin_binary() -> io.BufferedReader:
    stream = sys.stdin.buffer
    if not isinstance(stream, io.BufferedReader):
        stream = io.BufferedReader(stream)  # type: ignore[arg-type]
    return stream


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
