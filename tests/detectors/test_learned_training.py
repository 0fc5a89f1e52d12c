"""Training the learned heads: data reading, splits by source, fitting and reproducibility."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from redtier.detectors._learned import shared_embedder
from redtier.detectors._learned_data import (
    LabelKind,
    LabelledRow,
    read_pyrit_objective,
    read_xstest,
)
from redtier.detectors._learned_features import compute_features
from redtier.detectors._learned_splits import (
    COMPLIANCE_TRAIN_CATEGORIES,
    CROSS_SET,
    IN_DISTRIBUTION,
    LEFT_OUT,
    REFUSAL_TRAIN_PYRIT,
    SPLITS,
    TRAIN_XSTEST_MODELS,
)
from redtier.detectors._training import (
    choose_threshold,
    fit_fold_heads,
    fit_head,
    fit_logistic,
    pairs_of,
    source_weights,
)
from redtier.detectors.train import main as train_main
from tests._shared_data import SHARED_DATA

DATA = SHARED_DATA
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"labelled data not found at {DATA}")


@needs_data
def test_xstest_partial_counts_as_refusal() -> None:
    rows = list(read_xstest(DATA))
    assert len(rows) == 1800
    assert {row.group for row in rows} == {"gpt4", "llama2new", "llama2orig", "mistralinstruct"}
    partial = [row for row in rows if row.detail == "3_partial_refusal"]
    assert partial
    assert all(row.label == 1 for row in partial)
    assert all(row.label == 0 for row in rows if row.detail == "1_full_compliance")
    assert all(row.kind is LabelKind.REFUSAL for row in rows)


@needs_data
def test_objective_rows_keep_category() -> None:
    rows = list(read_pyrit_objective(DATA))
    assert len(rows) == 395
    assert {row.label for row in rows} == {0, 1}
    assert "violence" in {row.group for row in rows}


def _responses(rows: list[LabelledRow]) -> set[str]:
    return {" ".join(row.response.lower().split()) for row in rows}


@needs_data
@pytest.mark.parametrize("head", sorted(SPLITS))
def test_held_out_rows_never_trained_on(head: str) -> None:
    """Held-out and cross-set rows share no row, response, file or group with training."""
    split = SPLITS[head](DATA)
    held_out = [measure for measure in split.measure if not measure.left_out]
    assert held_out
    train_groups = {row.group for row in split.train}
    for measure in held_out:
        # mini_refusal.csv is made of responses that the other PyRIT files also contain.
        assert measure.rows or measure.dropped, measure.name
        assert measure.split in (IN_DISTRIBUTION, CROSS_SET)
        assert not {row.key for row in split.train} & {row.key for row in measure.rows}
        assert not _responses(split.train) & _responses(measure.rows), measure.name
        assert not set(split.sources()) & {row.source for row in measure.rows}, measure.name
        assert not train_groups & {row.group for row in measure.rows}, measure.name


@needs_data
def test_left_out_rows_unseen_by_their_fold_head() -> None:
    """A left-out row comes from training, but its fold head never saw its group or response."""
    split = SPLITS["refusal"](DATA)
    left_out = [measure for measure in split.measure if measure.left_out]
    assert left_out
    train_keys = {row.key for row in split.train}
    for measure in left_out:
        assert measure.split == LEFT_OUT
        assert measure.rows, measure.name
        assert {row.key for row in measure.rows} <= train_keys, measure.name
        for group in {row.group for row in measure.rows}:
            fold_train = [row for row in split.train if row.group != group]
            rows = [row for row in measure.rows if row.group == group]
            assert not _responses(fold_train) & _responses(rows), (measure.name, group)
    assert split.fold_groups() == sorted(
        {row.group for measure in left_out for row in measure.rows}
    )
    assert sum(len(measure.rows) for measure in left_out) >= 100


@needs_data
def test_splits_train_on_chosen_sources() -> None:
    refusal = SPLITS["refusal"](DATA)
    assert set(refusal.sources()) >= set(REFUSAL_TRAIN_PYRIT)
    assert {row.group for row in refusal.train} >= set(TRAIN_XSTEST_MODELS)
    assert refusal.fold_groups() == ["refusal", "refusal_extra"]
    compliance = SPLITS["harmful_compliance"](DATA)
    trained = {row.group for row in compliance.train}
    assert trained == set(COMPLIANCE_TRAIN_CATEGORIES) | set(TRAIN_XSTEST_MODELS)
    assert compliance.fold_groups() == []


@needs_data
def test_fold_heads_skip_their_group() -> None:
    split = SPLITS["refusal"](DATA)
    # A small subset keeps the test quick; it still contains both labels in every fold.
    rows = split.train[::20]
    subset = replace(split, train=rows)
    features = compute_features(shared_embedder(), pairs_of(rows))
    heads = fit_fold_heads(subset, features, folds=3)
    assert sorted(heads) == subset.fold_groups() == ["refusal", "refusal_extra"]
    without_extra = [row for row in rows if row.group != "refusal_extra"]
    alone = fit_head(
        "refusal",
        without_extra,
        features.subset([index for index, row in enumerate(rows) if row.group != "refusal_extra"]),
        folds=3,
    )
    assert json.dumps(heads["refusal_extra"].to_json()) == json.dumps(alone.head.to_json())
    assert json.dumps(heads["refusal"].to_json()) != json.dumps(alone.head.to_json())


@needs_data
def test_split_rows_are_sorted() -> None:
    split = SPLITS["refusal"](DATA)
    order = [(row.source, row.index) for row in split.train]
    assert order == sorted(order)


@needs_data
def test_training_reproducible_on_subset() -> None:
    split = SPLITS["refusal"](DATA)
    # Every 25th row: a small subset that still contains both labels and every source.
    rows = split.train[::25]
    assert {row.label for row in rows} == {0, 1}
    features = compute_features(shared_embedder(), pairs_of(rows))
    first = fit_head("refusal", rows, features, folds=3)
    second = fit_head("refusal", rows, features, folds=3)
    assert json.dumps(first.head.to_json()) == json.dumps(second.head.to_json())
    assert first.metrics == second.metrics
    assert 0.0 < first.head.threshold < 1.0
    other_seed = fit_head("refusal", rows, features, folds=3, seed=1)
    assert other_seed.metrics["rows"] == len(rows)


def test_fit_logistic_separates_classes() -> None:
    rng = np.random.default_rng(0)
    inputs = np.vstack([rng.normal(-2, 1, (40, 3)), rng.normal(2, 1, (40, 3))])
    labels = np.array([0.0] * 40 + [1.0] * 40)
    weights, bias = fit_logistic(inputs, labels, np.ones(80), l2=1.0)
    predicted = (inputs @ weights + bias) >= 0
    assert (predicted == (labels == 1)).mean() >= 0.95
    assert (weights > 0).all()


def test_choose_threshold_maximises_accuracy() -> None:
    probability = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.7])
    labels = np.array([0, 0, 1, 1, 1, 1])
    threshold = choose_threshold(probability, labels, np.ones(6))
    assert 0.2 < threshold <= 0.3


def test_choose_threshold_prefers_half_on_ties() -> None:
    probability = np.array([0.05, 0.96])
    labels = np.array([0, 1])
    assert choose_threshold(probability, labels, np.ones(2)) == 0.5


@needs_data
def test_source_weights_balance_files() -> None:
    rows = SPLITS["refusal"](DATA).train
    weights = source_weights(rows)
    totals: dict[str, float] = {}
    for row, weight in zip(rows, weights, strict=True):
        totals[row.source] = totals.get(row.source, 0.0) + weight
    assert len({round(total, 6) for total in totals.values()}) == 1
    assert weights.mean() == pytest.approx(1.0)


def test_train_command_reports_missing_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = train_main(["--data", str(tmp_path / "absent"), "--out", str(tmp_path / "out")])
    assert status == 2
    error = capsys.readouterr().err
    assert "No XSTest completions" in error
    assert "--data" in error
