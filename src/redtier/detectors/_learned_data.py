"""Read the human-labelled judge sets that the trained detectors learn from and are measured on.

Three kinds of set, each a folder of CSV files under a data root:

- XSTest model completions (``xstest/model_completions/``): completions of four chat
  models to 450 prompts, labelled full compliance, full refusal or partial refusal.
- PyRIT refusal sets (``pyrit/scorer_evals/refusal_scorer/`` and the ``sample/``
  copy): refusal or not, where a reply unrelated to the request counts as a refusal.
- PyRIT objective sets (``pyrit/scorer_evals/objective/``): did the reply achieve a
  harmful objective, one file per harm category.

Rows keep their file (relative to the root), their row number and the file's
sha256, so that a trained artefact can name exactly what it learned from.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from redtier.errors import ConfigError

XSTEST_DIR = "xstest/model_completions"
XSTEST_PREFIX = "xstest_v2_completions_"
PYRIT_REFUSAL_FILES = (
    "pyrit/scorer_evals/refusal_scorer/refusal.csv",
    "pyrit/scorer_evals/refusal_scorer/refusal_extra.csv",
    "pyrit/scorer_evals/sample/mini_refusal.csv",
)
PYRIT_OBJECTIVE_DIR = "pyrit/scorer_evals/objective"

FULL_COMPLIANCE = "1_full_compliance"
FULL_REFUSAL = "2_full_refusal"
PARTIAL_REFUSAL = "3_partial_refusal"
XSTEST_LABELS = (FULL_COMPLIANCE, FULL_REFUSAL, PARTIAL_REFUSAL)


class LabelKind(StrEnum):
    """The property of the response that a row's label marks."""

    REFUSAL = "refusal"
    """1 when the model declined, fully or partly."""
    COMPLIANCE = "compliance"
    """1 when the response delivered what the goal asked for."""


@dataclass(frozen=True)
class LabelledRow:
    """One human-labelled response, with the goal it answered and where it came from."""

    source: str
    """The file, relative to the data root, e.g. ``xstest/model_completions/x.csv``."""
    index: int
    """The row's position among the file's data rows, from 0."""
    group: str
    """The unit a split keeps together: the XSTest model, or the PyRIT file's stem."""
    goal: str
    response: str
    kind: LabelKind
    label: int
    """1 when the property that ``kind`` names is present, else 0."""
    detail: str = ""
    """The original label text (XSTest's ``final_label``), or the prompt type."""
    prompt_type: str = ""
    """XSTest's prompt type (``homonyms``, ``contrast_homonyms``, ...); empty elsewhere."""

    @property
    def key(self) -> str:
        """Identity of the row across runs: ``<source>#<index>``."""
        return f"{self.source}#{self.index}"

    @property
    def unsafe_prompt(self) -> bool:
        """Whether the XSTest prompt is one of the unsafe contrast prompts."""
        return self.prompt_type.startswith("contrast_")


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of the file at ``path``."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Read a CSV file whose leading ``#`` lines are comments and whose bytes may not be UTF-8."""
    if not path.is_file():
        raise ConfigError(
            f"Labelled data file not found: {path}. Pass --data with the folder that contains "
            f"xstest/ and pyrit/ (the shared data folder)."
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines) and lines[start].startswith("#"):
        start += 1
    return list(csv.DictReader(io.StringIO("".join(lines[start:]))))


def xstest_files(root: Path) -> list[Path]:
    """Return the XSTest completion files under ``root``, sorted by name."""
    files = sorted((root / XSTEST_DIR).glob(f"{XSTEST_PREFIX}*.csv"))
    if not files:
        raise ConfigError(
            f"No XSTest completions ({XSTEST_PREFIX}*.csv) in {root / XSTEST_DIR}. Pass --data "
            "with the folder that contains xstest/ and pyrit/."
        )
    return files


def objective_files(root: Path) -> list[Path]:
    """Return the PyRIT objective files under ``root``, sorted by name."""
    files = sorted((root / PYRIT_OBJECTIVE_DIR).glob("*.csv"))
    if not files:
        raise ConfigError(
            f"No PyRIT objective files in {root / PYRIT_OBJECTIVE_DIR}. Pass --data with the "
            "folder that contains xstest/ and pyrit/."
        )
    return files


def xstest_model(path: Path) -> str:
    """Return the model name in an XSTest completion file name, e.g. ``gpt4``."""
    return path.stem.removeprefix(XSTEST_PREFIX)


def read_xstest(root: Path) -> Iterator[LabelledRow]:
    """Yield every XSTest completion with a refusal label (partial refusal counts as refusal)."""
    for path in xstest_files(root):
        source = path.relative_to(root).as_posix()
        for index, row in enumerate(read_csv_rows(path)):
            final = row["final_label"].strip()
            if final not in XSTEST_LABELS:
                raise ConfigError(
                    f"Unexpected final_label {final!r} in {source} row {index}; expected one of "
                    f"{', '.join(XSTEST_LABELS)}."
                )
            yield LabelledRow(
                source=source,
                index=index,
                group=xstest_model(path),
                goal=row["prompt"],
                response=row["completion"],
                kind=LabelKind.REFUSAL,
                label=int(final != FULL_COMPLIANCE),
                detail=final,
                prompt_type=row["type"],
            )


def read_pyrit_refusal(root: Path, relative: str) -> Iterator[LabelledRow]:
    """Yield the rows of one PyRIT refusal file (``human_score`` 1 means a refusal)."""
    path = root / relative
    for index, row in enumerate(read_csv_rows(path)):
        yield LabelledRow(
            source=relative,
            index=index,
            group=path.stem,
            goal=row["objective"],
            response=row["assistant_response"],
            kind=LabelKind.REFUSAL,
            label=_binary(row["human_score"], relative, index),
        )


def read_pyrit_objective(root: Path) -> Iterator[LabelledRow]:
    """Yield the rows of every PyRIT objective file (``human_score`` 1: objective achieved)."""
    for path in objective_files(root):
        source = path.relative_to(root).as_posix()
        for index, row in enumerate(read_csv_rows(path)):
            yield LabelledRow(
                source=source,
                index=index,
                group=path.stem,
                goal=row["objective"],
                response=row["assistant_response"],
                kind=LabelKind.COMPLIANCE,
                label=_binary(row["human_score"], source, index),
                detail=row.get("harm_category", ""),
            )


def _binary(value: str, source: str, index: int) -> int:
    text = value.strip()
    if text not in ("0", "1"):
        raise ConfigError(
            f"Invalid human_score {value!r} in {source} row {index}: expected 0 or 1."
        )
    return int(text)


def response_key(text: str) -> str:
    """Return a key under which two responses that differ only in whitespace and case match."""
    return " ".join(text.lower().split())
