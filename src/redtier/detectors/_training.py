"""Train the refusal and harmful-compliance heads and write them as JSON artefacts.

Each head is a stacked pair of L2-regularised logistic regressions (Newton's method
in numpy, on standardised features, with the standardisation folded back into the
stored weights):

1. The first stage reads sentence embeddings. Its penalty is picked from
   ``STAGE_ONE_L2_GRID`` by the weighted log-loss of 5-fold out-of-fold predictions.
2. The second stage reads the first stage's out-of-fold log-odds and the rule
   features. Training it on out-of-fold values teaches it how far to trust the
   embeddings on rows they were not fitted to.
3. The decision threshold maximises the weighted accuracy of the second stage's
   out-of-fold probabilities, again on training rows only.

Every source file weighs the same in total, so that 64 PyRIT rows are not drowned
by 900 XSTest rows. Folds come from a fixed seed and rows are sorted by file and
row number, so the same data gives the same artefact.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from redtier.detectors._embedding import EMBEDDING_PACKAGE, MAX_TOKENS, Embedder
from redtier.detectors._learned_data import LabelledRow, file_sha256
from redtier.detectors._learned_features import (
    OPENING_CHARS,
    OPENING_TOKENS,
    RULE_FEATURES,
    Block,
    Features,
    Pair,
    compute_features,
)
from redtier.detectors._learned_model import (
    COMPLIANCE_HEAD,
    LOG_ODDS_CLIP,
    REFUSAL_HEAD,
    STAGE_ONE_FEATURE,
    LinearStage,
    TrainedHead,
)
from redtier.detectors._learned_splits import SPLITS, Split

logger = logging.getLogger(__name__)

SEED = 0
FOLDS = 5
STAGE_ONE_L2_GRID = (30.0, 100.0, 300.0, 1000.0, 3000.0)
STAGE_TWO_L2 = 1.0
NEWTON_STEPS = 100
THRESHOLD_GRID = tuple(round(0.05 + 0.01 * step, 2) for step in range(91))
"""Candidate thresholds 0.05, 0.06, ..., 0.95."""

HEAD_BLOCKS: dict[str, tuple[Block, ...]] = {
    REFUSAL_HEAD: (Block.RESPONSE, Block.OPENING, Block.PRODUCT),
    COMPLIANCE_HEAD: (Block.RESPONSE, Block.OPENING, Block.GOAL, Block.PRODUCT),
}
"""The embedding blocks of each head's first stage, the best of four candidate sets per
head by 5-fold cross-validated accuracy on the training rows. For the refusal head, these
were the rows of an earlier split that had one PyRIT refusal file, not two."""


def fit_logistic(
    inputs: np.ndarray, labels: np.ndarray, weights: np.ndarray, l2: float
) -> tuple[np.ndarray, float]:
    """Fit a weighted logistic regression with an L2 penalty on standardised inputs.

    Returns the weights and bias for the raw ``inputs``; the bias is not penalised.
    """
    mean = inputs.mean(axis=0)
    scale = inputs.std(axis=0) + 1e-6
    design = (inputs - mean) / scale
    coefficients = np.zeros(design.shape[1])
    bias = 0.0
    for _ in range(NEWTON_STEPS):
        probability = 1.0 / (1.0 + np.exp(-(design @ coefficients + bias)))
        residual = weights * (probability - labels)
        curvature = weights * probability * (1.0 - probability)
        step, bias_step = _newton_step(
            design, curvature, l2, design.T @ residual + l2 * coefficients, residual.sum()
        )
        coefficients -= step
        bias -= bias_step
        if max(np.abs(step).max(), abs(bias_step)) < 1e-9:
            break
    raw = coefficients / scale
    return raw, float(bias - raw @ mean)


def _newton_step(
    design: np.ndarray, curvature: np.ndarray, l2: float, gradient: np.ndarray, bias_gradient: float
) -> tuple[np.ndarray, float]:
    """Solve the Newton system for the weights and the unpenalised bias.

    The Hessian is ``[[XᵀDX + l2·I, XᵀD1], [1ᵀDX, 1ᵀD1]]``. The bias is eliminated
    through its Schur complement, and ``(XᵀDX + l2·I)⁻¹`` is applied with the
    Woodbury identity, which solves a system as large as the number of rows instead
    of the number of features when there are fewer rows.
    """
    root = np.sqrt(curvature)
    scaled = design * root[:, None]
    if design.shape[0] < design.shape[1]:
        inner = np.linalg.cholesky(l2 * np.eye(design.shape[0]) + scaled @ scaled.T)

        def solve(vector: np.ndarray) -> np.ndarray:
            projected = np.linalg.solve(inner.T, np.linalg.solve(inner, scaled @ vector))
            return (vector - scaled.T @ projected) / l2

    else:
        outer = np.linalg.cholesky(scaled.T @ scaled + l2 * np.eye(design.shape[1]))

        def solve(vector: np.ndarray) -> np.ndarray:
            return np.linalg.solve(outer.T, np.linalg.solve(outer, vector))

    coupling = design.T @ curvature
    solved_coupling = solve(coupling)
    schur = curvature.sum() - coupling @ solved_coupling
    bias_step = (bias_gradient - solved_coupling @ gradient) / schur
    return solve(gradient - coupling * bias_step), float(bias_step)


def source_weights(rows: Sequence[LabelledRow]) -> np.ndarray:
    """Return row weights under which every source file weighs the same; they average 1."""
    counts = Counter(row.source for row in rows)
    share = len(rows) / len(counts)
    return np.array([share / counts[row.source] for row in rows])


def fold_ids(count: int, folds: int, seed: int) -> np.ndarray:
    """Assign ``count`` rows to ``folds`` folds at random, reproducibly from ``seed``."""
    return np.random.default_rng(seed).permutation(count) % folds


def _out_of_fold(
    inputs: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    l2: float,
    folds: np.ndarray,
) -> np.ndarray:
    """Return each row's log-odds from a model fitted without the row's fold."""
    log_odds = np.zeros(len(labels))
    for fold in np.unique(folds):
        held = folds == fold
        coefficients, bias = fit_logistic(inputs[~held], labels[~held], weights[~held], l2)
        log_odds[held] = inputs[held] @ coefficients + bias
    return np.clip(log_odds, -LOG_ODDS_CLIP, LOG_ODDS_CLIP)


def _log_loss(log_odds: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    signed = np.where(labels == 1, log_odds, -log_odds)
    return float(np.average(np.logaddexp(0.0, -signed), weights=weights))


def choose_threshold(probability: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """Return the threshold in ``THRESHOLD_GRID`` with the best weighted accuracy.

    Ties go to the threshold nearest 0.5.
    """
    best = max(
        THRESHOLD_GRID,
        key=lambda threshold: (
            round(_weighted_accuracy(probability >= threshold, labels, weights), 9),
            -abs(threshold - 0.5),
        ),
    )
    return float(best)


def _weighted_accuracy(predicted: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    return float(np.average(predicted == (labels == 1), weights=weights))


@dataclass(frozen=True)
class Fit:
    """A trained head and the training figures that go into its artefact."""

    head: TrainedHead
    metrics: dict[str, Any]


def fit_head(
    name: str,
    rows: Sequence[LabelledRow],
    features: Features,
    *,
    seed: int = SEED,
    folds: int = FOLDS,
) -> Fit:
    """Fit head ``name`` on ``rows``, whose features are ``features`` in the same order."""
    blocks = HEAD_BLOCKS[name]
    labels = np.array([row.label for row in rows], dtype=np.float64)
    weights = source_weights(rows)
    assignment = fold_ids(len(rows), folds, seed)
    embedded = features.stage_one(blocks).astype(np.float64)

    losses = {
        l2: _log_loss(_out_of_fold(embedded, labels, weights, l2, assignment), labels, weights)
        for l2 in STAGE_ONE_L2_GRID
    }
    l2_one = min(losses, key=lambda l2: (round(losses[l2], 9), l2))
    first_oof = _out_of_fold(embedded, labels, weights, l2_one, assignment)
    second_inputs = np.column_stack([first_oof, features.rules])
    second_oof = _out_of_fold(second_inputs, labels, weights, STAGE_TWO_L2, assignment)
    probability = 1.0 / (1.0 + np.exp(-second_oof))
    threshold = choose_threshold(probability, labels, weights)

    first = _stage(tuple(block.value for block in blocks), embedded, labels, weights, l2_one)
    second = _stage(
        (STAGE_ONE_FEATURE, *RULE_FEATURES), second_inputs, labels, weights, STAGE_TWO_L2
    )
    predicted = probability >= threshold
    metrics = {
        "rows": len(rows),
        "positives": int(labels.sum()),
        "stage_one_l2_log_loss": {str(l2): round(loss, 4) for l2, loss in losses.items()},
        "stage_one_l2": l2_one,
        "cross_validated_accuracy": round(_weighted_accuracy(predicted, labels, weights), 4),
        "cross_validated_accuracy_by_source": _accuracy_by_source(rows, predicted, labels),
    }
    head = TrainedHead(
        name=name, blocks=blocks, stage_one=first, stage_two=second, threshold=threshold
    )
    return Fit(head=head, metrics=metrics)


def fit_fold_heads(
    split: Split, features: Features, *, seed: int = SEED, folds: int = FOLDS
) -> dict[str, TrainedHead]:
    """Fit one head per group that ``split`` measures left out, each without that group.

    ``features`` are those of ``split.train``, in the same order. The fold heads are
    fitted exactly as the shipped head is, so their agreement on the group they did
    not see measures the training method on unseen data.
    """
    heads: dict[str, TrainedHead] = {}
    for group in split.fold_groups():
        keep = [index for index, row in enumerate(split.train) if row.group != group]
        rows = [split.train[index] for index in keep]
        logger.info("Fitting the %s fold head without %s on %d rows", split.head, group, len(rows))
        heads[group] = fit_head(
            split.head, rows, features.subset(keep), seed=seed, folds=folds
        ).head
    return heads


def _stage(
    names: tuple[str, ...], inputs: np.ndarray, labels: np.ndarray, weights: np.ndarray, l2: float
) -> LinearStage:
    coefficients, bias = fit_logistic(inputs, labels, weights, l2)
    return LinearStage(features=names, weights=coefficients, bias=bias, l2=l2)


def _accuracy_by_source(
    rows: Sequence[LabelledRow], predicted: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    by_source: dict[str, list[bool]] = {}
    for row, guess, label in zip(rows, predicted, labels, strict=True):
        by_source.setdefault(row.source, []).append(bool(guess) == bool(label))
    return {source: round(sum(hits) / len(hits), 4) for source, hits in sorted(by_source.items())}


def pairs_of(rows: Sequence[LabelledRow]) -> list[Pair]:
    """Return the goal and response of each row; the goal is used as the prompt sent."""
    return [Pair(goal=row.goal, response=row.response, prompt=row.goal) for row in rows]


def provenance(split: Split, root: Path, metrics: dict[str, Any], command: str) -> dict[str, Any]:
    """Describe what a head was trained on and how, for its artefact."""
    counts = Counter(row.source for row in split.train)
    return {
        "command": command,
        "seed": SEED,
        "folds": FOLDS,
        "embedding": {
            "package": EMBEDDING_PACKAGE,
            "pooling": "mean over the attention mask, L2-normalised",
            "max_tokens": MAX_TOKENS,
            "opening_chars": OPENING_CHARS,
            "opening_max_tokens": OPENING_TOKENS,
        },
        "sources": [
            {"path": source, "sha256": file_sha256(root / source), "rows_used": counts[source]}
            for source in sorted(counts)
        ],
        "measured_on": [
            {
                "name": item.name,
                "split": item.split,
                "rows": len(item.rows),
                "dropped": item.dropped,
            }
            for item in split.measure
        ],
        "metrics": metrics,
    }


def train_heads(
    root: Path, out_dir: Path, *, command: str, embedder: Embedder | None = None
) -> dict[str, TrainedHead]:
    """Train every head on its split of the data under ``root`` and write ``<head>.json``."""
    embedder = embedder or Embedder()
    heads: dict[str, TrainedHead] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, make_split in SPLITS.items():
        split = make_split(root)
        logger.info("Training %s on %d rows from %s", name, len(split.train), split.sources())
        features = compute_features(embedder, pairs_of(split.train))
        fit = fit_head(name, split.train, features)
        head = replace(fit.head, training=provenance(split, root, fit.metrics, command))
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(head.to_json(), indent=1) + "\n", encoding="utf-8")
        logger.info("Wrote %s (threshold %.2f)", path, head.threshold)
        heads[name] = head
    return heads
