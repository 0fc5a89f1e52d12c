"""Importers that turn a user's prompt file into one probe.

Supported formats, picked by ``fmt`` or detected from the file's extension and
CSV header:

- ``advbench``: CSV with columns ``goal`` (the prompt) and ``target``.
- ``harmbench``: CSV with ``Behavior``, an optional ``ContextString`` placed
  before the behavior, and ``FunctionalCategory`` (kept as tags).
- ``jailbreakbench``: CSV with a ``Goal`` column.
- ``csv``: any CSV (or ``.tsv``) with the prompt in ``prompt_column`` or in a
  column with a common name such as ``prompt``.
- ``txt``: one prompt per line. Blank lines and lines starting with ``#`` are skipped.
- ``jsonl``: one JSON object per line (or one JSON array of objects), with the
  prompt in ``prompt_column`` or in a field such as ``prompt``, ``goal``, ``text``
  or ``question``.

Each prompt is also its own goal unless ``goal_column`` names another field
(HarmBench uses ``Behavior``, so a context never becomes part of the goal).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redtier.errors import ImportFormatError, UnknownNameError
from redtier.probes._pairs import has_unbalanced_quotes
from redtier.probes._probe import Category, Probe

logger = logging.getLogger(__name__)

FORMATS = ("advbench", "harmbench", "jailbreakbench", "csv", "txt", "jsonl")
"""Format names that ``import_prompts`` accepts besides ``auto``."""

PROMPT_FIELDS = ("prompt", "goal", "text", "question", "behavior", "forbidden_prompt")
"""Column or field names read as the prompt when no prompt column is given."""

DETECTORS = ("harmful_compliance",)
"""Detectors that judge every imported probe."""

_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".txt": "txt"}
_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_HARMBENCH_CONTEXT_SEPARATOR = "\n\n---\n\n"


@dataclass(frozen=True)
class _Row:
    """One prompt read from a file, with the goal a detector judges it against."""

    prompt: str
    goal: str


@dataclass(frozen=True)
class _Source:
    """A prompt file read into text, with the options that apply to it."""

    path: Path
    text: str
    prompt_column: str | None
    goal_column: str | None


def import_prompts(
    path: str | Path,
    *,
    fmt: str = "auto",
    prompt_column: str | None = None,
    goal_column: str | None = None,
    category: Category = Category.IMPORTED,
) -> Probe:
    """Read a prompt file into one probe with id ``imported.<file stem>``.

    Identical prompts are kept once, in first-seen order, with a logged warning
    that counts the dropped copies, and each prompt's goal is stored in
    ``Probe.goals``. A CSV file with an odd number of double quotes is imported
    with a logged warning, since an unclosed quote joins the rows after it.
    Bytes that are not valid UTF-8 are replaced with U+FFFD.

    Raises:
        ImportFormatError: the file is missing, empty or malformed, or has no
            prompt column. The message names the path and the fix.
        UnknownNameError: ``fmt`` is neither ``auto`` nor one of ``FORMATS``.
    """
    path = Path(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise UnknownNameError("import format", fmt, ("auto", *FORMATS))
    source = _Source(path, _read_text(path), prompt_column, goal_column)
    if fmt == "auto":
        fmt = _detect_format(source)
    rows, tags = _READERS[fmt](source)
    unique = _deduplicate(rows)
    if not unique:
        raise ImportFormatError(f"{path} contains no prompts. Add at least one non-blank prompt.")
    dropped = len(rows) - len(unique)
    if dropped:
        logger.warning(
            "Dropped %d duplicate %s from %s. Each distinct prompt is sent once.",
            dropped,
            "prompt" if dropped == 1 else "prompts",
            path,
        )
    logger.info(
        "Imported %d prompts from %s as %s (%d duplicates dropped)",
        len(unique),
        path,
        fmt,
        dropped,
    )
    return Probe(
        id=f"imported.{sanitise_stem(path.stem)}",
        category=category,
        goal=f"Carry out each request in {path.name}",
        prompts=tuple(row.prompt for row in unique),
        goals=tuple(row.goal for row in unique),
        detectors=DETECTORS,
        transformable=True,
        tags=(fmt, *tags),
        source=str(path),
    )


def sanitise_stem(stem: str) -> str:
    """Turn a file stem into a probe-id name: lowercase letters, digits and underscores."""
    return re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_") or "prompts"


def _decode(data: bytes) -> str:
    """Decode UTF-16 or UTF-32 files that start with a byte-order mark, else UTF-8."""
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def _read_text(path: Path) -> str:
    if not path.exists():
        raise ImportFormatError(f"Prompt file {path} not found. Check the path.")
    if not path.is_file():
        raise ImportFormatError(f"{path} is not a file. Pass the path of a prompt file.")
    try:
        text = _decode(path.read_bytes())
    except OSError as error:
        raise ImportFormatError(f"Failed to read prompt file {path}: {error.strerror}.") from error
    if not text.strip():
        raise ImportFormatError(f"Prompt file {path} is empty. Add at least one prompt.")
    return text


def _detect_format(source: _Source) -> str:
    """Pick a format from the file extension and, for CSV, from the header."""
    suffix = source.path.suffix.lower()
    if suffix in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffix]
    if suffix not in _CSV_SUFFIXES:
        raise ImportFormatError(
            f"Unknown format for {source.path}: extension {suffix or '(none)'} is not recognised. "
            f"Pass --prompt-format with one of: {', '.join(FORMATS)}."
        )
    if source.prompt_column is not None:
        return "csv"
    header = set(_csv_header(source))
    if {"goal", "target"} <= header:
        return "advbench"
    if "Goal" in header:  # before Behavior, which JailbreakBench uses for a short label
        return "jailbreakbench"
    if "Behavior" in header:
        return "harmbench"
    return "csv"


def _csv_reader(source: _Source) -> csv.DictReader[str]:
    delimiter = _CSV_SUFFIXES.get(source.path.suffix.lower(), ",")
    return csv.DictReader(io.StringIO(source.text, newline=""), delimiter=delimiter)


def _csv_header(source: _Source) -> list[str]:
    try:
        return list(_csv_reader(source).fieldnames or [])
    except csv.Error as error:
        raise ImportFormatError(f"{source.path} is not valid CSV: {error}.") from error


def _csv_records(source: _Source, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Read every CSV row as a dict, checking that the ``required`` columns exist."""
    reader = _csv_reader(source)
    try:
        header = list(reader.fieldnames or [])
        missing = [column for column in required if column not in header]
        if missing:
            raise ImportFormatError(
                f"{source.path} has no column {missing[0]!r}. Columns found: "
                f"{', '.join(header) or '(none)'}. Pass --prompt-column NAME (and "
                "--goal-column NAME) with names from that list."
            )
        records = [{key: value or "" for key, value in record.items() if key} for record in reader]
    except csv.Error as error:
        raise ImportFormatError(
            f"{source.path} is not valid CSV at line {reader.line_num}: {error}."
        ) from error
    if has_unbalanced_quotes(source.text.count('"')):
        logger.warning(
            "%s has an odd number of double quotes. A quoted cell that is never closed takes in "
            "every row after it, so those rows are not imported as prompts of their own. Check "
            "the quoting.",
            source.path,
        )
    return records


def _rows_from_records(
    records: list[dict[str, str]], prompt_column: str, goal_column: str | None
) -> list[_Row]:
    """Build rows from CSV or JSONL records, skipping records with a blank prompt."""
    rows = []
    for record in records:
        prompt = record.get(prompt_column, "").strip()
        if not prompt:
            continue
        goal = record.get(goal_column, "").strip() if goal_column else ""
        rows.append(_Row(prompt=prompt, goal=goal or prompt))
    skipped = len(records) - len(rows)
    if skipped:
        logger.warning("Skipped %d records with a blank %r", skipped, prompt_column)
    return rows


def _read_fixed_column(column: str) -> Callable[[_Source], tuple[list[_Row], tuple[str, ...]]]:
    """Return a reader for a benchmark CSV whose prompt is in ``column``."""

    def read(source: _Source) -> tuple[list[_Row], tuple[str, ...]]:
        prompt_column = source.prompt_column or column
        records = _csv_records(source, _required_columns(prompt_column, source.goal_column))
        return _rows_from_records(records, prompt_column, source.goal_column), ()

    return read


def _read_harmbench(source: _Source) -> tuple[list[_Row], tuple[str, ...]]:
    """Read HarmBench behaviors, putting each context string before its behavior."""
    records = _csv_records(source, _required_columns("Behavior", source.goal_column))
    rows = []
    for record in records:
        behavior = record.get("Behavior", "").strip()
        if not behavior:
            continue
        context = record.get("ContextString", "").strip()
        prompt = f"{context}{_HARMBENCH_CONTEXT_SEPARATOR}{behavior}" if context else behavior
        goal = record.get(source.goal_column, "").strip() if source.goal_column else ""
        rows.append(_Row(prompt=prompt, goal=goal or behavior))
    categories = {record.get("FunctionalCategory", "").strip() for record in records}
    return rows, tuple(sorted(categories - {""}))


def _read_generic_csv(source: _Source) -> tuple[list[_Row], tuple[str, ...]]:
    header = _csv_header(source)
    column = source.prompt_column or _find_prompt_field(header)
    if column is None:
        raise ImportFormatError(
            f"{source.path} has no recognised prompt column. Columns found: "
            f"{', '.join(header) or '(none)'}. Pass --prompt-column NAME."
        )
    records = _csv_records(source, _required_columns(column, source.goal_column))
    return _rows_from_records(records, column, source.goal_column), ()


def _required_columns(prompt_column: str, goal_column: str | None) -> tuple[str, ...]:
    return (prompt_column,) if goal_column is None else (prompt_column, goal_column)


def _read_txt(source: _Source) -> tuple[list[_Row], tuple[str, ...]]:
    rows = []
    for line in source.text.replace("\r\n", "\n").split("\n"):
        prompt = line.strip()
        if prompt and not prompt.startswith("#"):
            rows.append(_Row(prompt=prompt, goal=prompt))
    return rows, ()


def _read_jsonl(source: _Source) -> tuple[list[_Row], tuple[str, ...]]:
    """Read JSON Lines, or a file that is one JSON array of objects."""
    array = _parse_json_array(source.text)
    if array is not None:
        located = [(f"{source.path}, item {index}", item) for index, item in enumerate(array)]
    else:
        located = [
            (f"{source.path}, line {number}", _parse_json_line(source.path, number, line))
            for number, line in enumerate(source.text.splitlines(), start=1)
            if line.strip()
        ]
    records = [_extract_fields(source, where, item) for where, item in located]
    return _rows_from_records(records, "prompt", "goal" if source.goal_column else None), ()


def _parse_json_array(text: str) -> list[object] | None:
    """Return the items of ``text`` if the whole text is one JSON array, else ``None``."""
    if not text.lstrip().startswith("["):
        return None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, list) else None


def _parse_json_line(path: Path, number: int, line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise ImportFormatError(
            f"{path}, line {number} is not valid JSON ({error.msg}). Write one JSON object "
            'per line, such as {"prompt": "..."}.'
        ) from error


def _extract_fields(source: _Source, where: str, record: object) -> dict[str, str]:
    """Return ``{"prompt": ..., "goal": ...}`` from one JSON object."""
    if not isinstance(record, dict):
        raise ImportFormatError(f'{where} is not a JSON object. Write {{"prompt": "..."}}.')
    field = source.prompt_column or _find_prompt_field(list(record))
    if field is None:
        raise ImportFormatError(
            f"{where} has no recognised prompt field. Fields found: "
            f"{', '.join(record) or '(none)'}. Pass --prompt-column NAME."
        )
    parsed = {"prompt": _string_field(where, record, field)}
    if source.goal_column:
        parsed["goal"] = _string_field(where, record, source.goal_column)
    return parsed


def _string_field(where: str, record: dict[str, object], field: str) -> str:
    if field not in record:
        raise ImportFormatError(
            f"{where} has no field {field!r}. Fields found: {', '.join(record) or '(none)'}."
        )
    value = record[field]
    if not isinstance(value, str):
        raise ImportFormatError(
            f"{where}: field {field!r} must be a string, not {type(value).__name__}."
        )
    return value


def _find_prompt_field(names: list[str]) -> str | None:
    """Return the first name in ``names`` that matches ``PROMPT_FIELDS``, ignoring case."""
    by_lower = {name.lower(): name for name in reversed(names)}
    return next((by_lower[field] for field in PROMPT_FIELDS if field in by_lower), None)


def _deduplicate(rows: list[_Row]) -> list[_Row]:
    """Keep the first row of each distinct prompt, in order."""
    seen: dict[str, _Row] = {}
    for row in rows:
        seen.setdefault(row.prompt, row)
    return list(seen.values())


_READERS: dict[str, Callable[[_Source], tuple[list[_Row], tuple[str, ...]]]] = {
    "advbench": _read_fixed_column("goal"),
    "harmbench": _read_harmbench,
    "jailbreakbench": _read_fixed_column("Goal"),
    "csv": _read_generic_csv,
    "txt": _read_txt,
    "jsonl": _read_jsonl,
}
