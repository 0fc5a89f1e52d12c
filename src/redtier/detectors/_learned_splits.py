"""Each trained head's split of the labelled rows into training rows and measuring sets.

The split is by source, never by row. A head ships trained on every row of its
training sources, and it is measured in one of two ways:

- **held out**: rows from sources the shipped head never saw. The XSTest
  completions of GPT-4 and Llama-2 (new system prompt) are held out from both heads.
- **left out in turn**: a source that the shipped head trained on is measured with
  a head fitted the same way on the other training sources, never on the measured
  one (one fold head per source). This measures the training method on data it
  has not seen, where the data is too scarce to keep whole sources out of the
  shipped head.

The heads:

- **refusal**: trained on the XSTest completions of Llama-2 (original system
  prompt) and Mistral-Instruct, the two models at the extremes of refusing, and on
  PyRIT's ``refusal.csv`` and ``refusal_extra.csv``. Measured on the held-out XSTest
  models, and on each of the two PyRIT files left out in turn. PyRIT's
  ``mini_refusal.csv`` is neither: all its responses also occur in the other two.
- **harmful compliance**: trained on four PyRIT objective categories (exploits,
  information integrity, self-harm, violence) and on the same two XSTest models'
  completions (full compliance 1, full refusal 0, partial refusals left out).
  Measured on the other ten objective categories, on the held-out XSTest models
  (partial refusals left out), and, as a cross-set check, on the PyRIT refusal sets
  read the other way round (not refused means delivered). Trained on all fourteen
  categories, the head learned that a refusal followed by the requested steps
  delivers nothing, because the raters marked many hedged replies of that shape as
  not achieved. That is the failure this detector exists to catch, so the
  categories stay split.

A measuring row whose response text (whitespace and case aside) also occurs among
the rows its head was trained on is dropped and counted, because PyRIT's files
share responses with each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from redtier.detectors._learned_data import (
    FULL_COMPLIANCE,
    PARTIAL_REFUSAL,
    PYRIT_REFUSAL_FILES,
    LabelKind,
    LabelledRow,
    read_pyrit_objective,
    read_pyrit_refusal,
    read_xstest,
    response_key,
)

TRAIN_XSTEST_MODELS = ("llama2orig", "mistralinstruct")
COMPLIANCE_TRAIN_CATEGORIES = ("exploits", "info_integrity", "self_harm", "violence")
REFUSAL_TRAIN_PYRIT = PYRIT_REFUSAL_FILES[:2]
"""``refusal.csv`` and ``refusal_extra.csv``. ``mini_refusal.csv`` is left out: every one of
its responses also occurs in those two files, so it adds no reply of its own."""

IN_DISTRIBUTION = "held-out, in distribution"
"""Rows of a data set that the head also trained on, from models or categories it did not."""
CROSS_SET = "cross-set"
"""Rows of a data set that the head never trained on."""
LEFT_OUT = "left out in turn"
"""Rows of a training source, each judged by a head fitted without that source."""


@dataclass(frozen=True)
class MeasureSet:
    """Rows to measure a head on, with how they relate to its training data."""

    name: str
    split: str
    """``IN_DISTRIBUTION``, ``CROSS_SET`` or ``LEFT_OUT``."""
    rows: list[LabelledRow]
    dropped: int = 0
    """Rows left out because their response also occurs among the training rows."""
    note: str = ""

    @property
    def left_out(self) -> bool:
        """Whether each row is judged by a fold head trained without the row's group."""
        return self.split == LEFT_OUT


@dataclass(frozen=True)
class Split:
    """One head's training rows and measuring sets."""

    head: str
    train: list[LabelledRow]
    measure: list[MeasureSet] = field(default_factory=list)

    def sources(self) -> list[str]:
        """Return the files the training rows come from, sorted."""
        return sorted({row.source for row in self.train})

    def fold_groups(self) -> list[str]:
        """Return the groups that a fold head is trained without, sorted."""
        return sorted({row.group for item in self.measure if item.left_out for row in item.rows})


def _is_train_xstest(row: LabelledRow) -> bool:
    return row.group in TRAIN_XSTEST_MODELS


def _as_compliance(row: LabelledRow) -> LabelledRow | None:
    """Relabel an XSTest refusal row as delivered (1) or not (0); partial refusals give None."""
    if row.detail == PARTIAL_REFUSAL:
        return None
    return replace(row, kind=LabelKind.COMPLIANCE, label=int(row.detail == FULL_COMPLIANCE))


def _delivered(row: LabelledRow) -> LabelledRow:
    """Read a PyRIT refusal row the other way round: not refused means the goal was delivered."""
    return replace(row, kind=LabelKind.COMPLIANCE, label=1 - row.label)


def _measure(
    name: str,
    split: str,
    rows: list[LabelledRow],
    seen: set[str],
    note: str = "",
) -> MeasureSet:
    kept = _sorted(row for row in rows if response_key(row.response) not in seen)
    return MeasureSet(name=name, split=split, rows=kept, dropped=len(rows) - len(kept), note=note)


def _left_out(
    name: str, rows: list[LabelledRow], train: list[LabelledRow], note: str
) -> MeasureSet:
    """Measure ``rows`` (training rows) by fold heads; drop responses their fold head saw."""
    seen: dict[str, set[str]] = {}
    for group in {row.group for row in rows}:
        seen[group] = {response_key(row.response) for row in train if row.group != group}
    unseen = _sorted(row for row in rows if response_key(row.response) not in seen[row.group])
    return MeasureSet(
        name=name, split=LEFT_OUT, rows=unseen, dropped=len(rows) - len(unseen), note=note
    )


def _sorted(rows: Iterable[LabelledRow]) -> list[LabelledRow]:
    return sorted(rows, key=lambda row: (row.source, row.index))


def refusal_split(root: Path) -> Split:
    """Return the refusal head's split of the labelled data under ``root``."""
    xstest = list(read_xstest(root))
    pyrit = {relative: list(read_pyrit_refusal(root, relative)) for relative in PYRIT_REFUSAL_FILES}
    train = _sorted(
        [row for row in xstest if _is_train_xstest(row)]
        + [row for relative in REFUSAL_TRAIN_PYRIT for row in pyrit[relative]]
    )
    seen = {response_key(row.response) for row in train}
    held_out = [row for row in xstest if not _is_train_xstest(row)]
    measure = [
        _measure(
            "XSTest completions, held-out models",
            IN_DISTRIBUTION,
            held_out,
            seen,
            note="models " + ", ".join(sorted({row.group for row in held_out})),
        )
    ]
    for relative, rows in pyrit.items():
        name = Path(relative).name
        if relative in REFUSAL_TRAIN_PYRIT:
            note = f"judged by a head trained without {name}"
            measure.append(_left_out(f"PyRIT {name}", rows, train, note=note))
        else:
            measure.append(_measure(f"PyRIT {name}", CROSS_SET, rows, seen))
    return Split(head="refusal", train=train, measure=measure)


def compliance_split(root: Path) -> Split:
    """Return the harmful-compliance head's split of the labelled data under ``root``."""
    objective = list(read_pyrit_objective(root))
    xstest = [row for row in map(_as_compliance, read_xstest(root)) if row is not None]
    in_train: Callable[[LabelledRow], bool] = lambda row: row.group in COMPLIANCE_TRAIN_CATEGORIES
    train = _sorted(
        [row for row in objective if in_train(row)]
        + [row for row in xstest if _is_train_xstest(row)]
    )
    seen = {response_key(row.response) for row in train}
    held_out_objective = [row for row in objective if not in_train(row)]
    xstest_held_out = [row for row in xstest if not _is_train_xstest(row)]
    measure = [
        _measure(
            "PyRIT objective sets, held-out categories",
            IN_DISTRIBUTION,
            held_out_objective,
            seen,
            note="categories " + ", ".join(sorted({row.group for row in held_out_objective})),
        ),
        _measure(
            "XSTest completions, held-out models",
            IN_DISTRIBUTION,
            xstest_held_out,
            seen,
            note="full compliance counts as delivered; partial refusals left out",
        ),
    ]
    for relative in PYRIT_REFUSAL_FILES:
        rows = [_delivered(row) for row in read_pyrit_refusal(root, relative)]
        measure.append(
            _measure(
                f"PyRIT {Path(relative).name}, read as delivered",
                CROSS_SET,
                rows,
                seen,
                note="label 1 when the rater saw no refusal",
            )
        )
    return Split(head="harmful_compliance", train=train, measure=measure)


SPLITS: dict[str, Callable[[Path], Split]] = {
    "refusal": refusal_split,
    "harmful_compliance": compliance_split,
}
"""Each head's split function, by head name."""
