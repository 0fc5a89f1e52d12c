"""A trained head: two logistic-regression stages and a decision threshold, stored as JSON.

The first stage maps sentence embeddings to log-odds. The second stage takes those
log-odds (clipped to ±``LOG_ODDS_CLIP``) and the rule features and returns the
probability that the judged property is present. The threshold was chosen by
cross-validation on the training rows. Detectors report
``sigmoid(logit(p) - logit(threshold))``, a score that reaches 0.5 exactly when
``p`` reaches the threshold, so the verdict threshold of 0.5 applies the trained one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from redtier.detectors._learned_features import RULE_FEATURES, Block, Features
from redtier.errors import ModelLoadError

ARTEFACT_FORMAT = 1
LOG_ODDS_CLIP = 9.0
"""Bound on the first stage's log-odds, about a probability of 1e-4 from 0 or 1."""
STAGE_ONE_FEATURE = "stage_one_log_odds"
TRAINED_PACKAGE = "redtier.detectors"
TRAINED_FOLDER = "trained"
REFUSAL_HEAD = "refusal"
COMPLIANCE_HEAD = "harmful_compliance"


@dataclass(frozen=True)
class LinearStage:
    """One logistic regression: ``log-odds = features · weights + bias``."""

    features: tuple[str, ...]
    weights: np.ndarray
    bias: float
    l2: float
    """The ridge penalty it was fitted with, on standardised features."""

    def log_odds(self, inputs: np.ndarray) -> np.ndarray:
        """Return the log-odds for each row of ``inputs``."""
        return inputs @ self.weights + self.bias

    def to_json(self) -> dict[str, Any]:
        """Return the stage as JSON-ready values, weights rounded to 7 significant digits."""
        return {
            "features": list(self.features),
            "l2": self.l2,
            "bias": float(f"{self.bias:.7g}"),
            "weights": [float(f"{weight:.7g}") for weight in self.weights],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearStage:
        """Build a stage from :meth:`to_json` output."""
        return cls(
            features=tuple(data["features"]),
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=float(data["bias"]),
            l2=float(data["l2"]),
        )


@dataclass(frozen=True)
class Prediction:
    """A head's output for a list of pairs."""

    probability: np.ndarray
    """The second stage's probability that the property is present."""
    embedding_probability: np.ndarray
    """The first stage's probability, from the embeddings alone."""
    score: np.ndarray
    """The probability moved so that the trained threshold sits at 0.5."""


@dataclass(frozen=True)
class TrainedHead:
    """A trained refusal or harmful-compliance classifier with where it came from."""

    name: str
    blocks: tuple[Block, ...]
    stage_one: LinearStage
    stage_two: LinearStage
    threshold: float
    training: dict[str, Any] = field(default_factory=dict)
    """Sources with sha256, split, metrics, seed and the command that wrote the artefact."""

    def predict(self, features: Features) -> Prediction:
        """Score every pair in ``features``."""
        first = np.clip(
            self.stage_one.log_odds(features.stage_one(self.blocks)), -LOG_ODDS_CLIP, LOG_ODDS_CLIP
        )
        second = self.stage_two.log_odds(np.column_stack([first, features.rules]))
        shift = math.log(self.threshold / (1.0 - self.threshold))
        return Prediction(
            probability=_sigmoid(second),
            embedding_probability=_sigmoid(first),
            score=_sigmoid(second - shift),
        )

    def to_json(self) -> dict[str, Any]:
        """Return the head as the JSON object that :func:`load_head` reads."""
        return {
            "format": ARTEFACT_FORMAT,
            "head": self.name,
            "embedding_blocks": [block.value for block in self.blocks],
            "threshold": round(self.threshold, 4),
            "stage_one": self.stage_one.to_json(),
            "stage_two": self.stage_two.to_json(),
            "training": self.training,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainedHead:
        """Build a head from :meth:`to_json` output, checking its format and feature names."""
        if data.get("format") != ARTEFACT_FORMAT:
            raise ValueError(f"artefact format {data.get('format')!r}, expected {ARTEFACT_FORMAT}")
        head = cls(
            name=data["head"],
            blocks=tuple(Block(name) for name in data["embedding_blocks"]),
            stage_one=LinearStage.from_json(data["stage_one"]),
            stage_two=LinearStage.from_json(data["stage_two"]),
            threshold=float(data["threshold"]),
            training=data.get("training", {}),
        )
        expected = (STAGE_ONE_FEATURE, *RULE_FEATURES)
        if head.stage_two.features != expected:
            raise ValueError(
                f"second-stage features {head.stage_two.features}, expected {expected}"
            )
        if not 0.0 < head.threshold < 1.0:
            raise ValueError(f"threshold {head.threshold} is not between 0 and 1")
        return head


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def artefact_path(name: str) -> Path:
    """Return the path of the shipped artefact for head ``name``."""
    return Path(str(resources.files(TRAINED_PACKAGE).joinpath(TRAINED_FOLDER, f"{name}.json")))


def load_head(name: str, path: Path | None = None) -> TrainedHead:
    """Load the head ``name`` from ``path``, by default the artefact shipped in the package.

    Raises:
        ModelLoadError: the file is missing or is not a valid artefact.
    """
    target = path or artefact_path(name)
    retrain = ".venv/bin/python -m redtier.detectors.train --data PATH_TO_SHARED_DATA"
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
        return TrainedHead.from_json(data)
    except FileNotFoundError as error:
        raise ModelLoadError(
            f"Trained detector artefact not found: {target}. Reinstall redtier, or rebuild it "
            f"with: {retrain}"
        ) from error
    except (ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(
            f"Invalid trained detector artefact {target}: {error}. Rebuild it with: {retrain}"
        ) from error
