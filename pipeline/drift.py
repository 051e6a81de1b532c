"""How far what the service receives and predicts has moved from what its model learned: aggregate statistics
only, never a request's values. Training stores the profile of its data beside the model (PROFILE_FILE); the
service adds each batch to a window and, once the window holds enough records, reports each distance as the
shift of the window's mean in the training data's standard deviations (what the drift alarm compares with
config service.drift_max_distance). Pure: NumPy in, numbers out."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

PROFILE_FILE = "training_profile.json"
"""In the model's own directory (training/train.py stores it; model_service/model.py reads it)."""
PREDICTION = "prediction"


@dataclass(frozen=True)
class Moments:
    mean: float
    std: float


@dataclass(frozen=True)
class Profile:
    """The training data's mean and standard deviation per feature, and of the model's predictions on it."""

    features: Mapping[str, Moments]
    prediction: Moments
    rows: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "features": {name: [m.mean, m.std] for name, m in self.features.items()},
                PREDICTION: [self.prediction.mean, self.prediction.std],
                "rows": self.rows,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Profile:
        raw = json.loads(text)
        return cls(
            {name: Moments(float(m), float(s)) for name, (m, s) in raw["features"].items()},
            Moments(*(float(v) for v in raw[PREDICTION])),
            int(raw["rows"]),
        )


def _moments(values: np.ndarray) -> Moments:
    known = values[~np.isnan(values)]
    return Moments(float(known.mean()), float(known.std())) if known.size else Moments(math.nan, math.nan)


def profile_of(matrix: np.ndarray, names: Sequence[str], predictions: np.ndarray) -> Profile:
    """The profile of training rows (`matrix`, columns in `names` order, NaN where missing) and the model's
    predictions on them."""
    return Profile(
        {name: _moments(matrix[:, i]) for i, name in enumerate(names)},
        _moments(np.asarray(predictions)),
        int(matrix.shape[0]),
    )


def distance(window_mean: float, learned: Moments) -> float:
    """The shift of a mean in standard deviations of the training data; 0 where either is unknown, or where the
    feature never varied in training (no scale to measure by: float noise would alarm for ever)."""
    if math.isnan(window_mean) or math.isnan(learned.mean) or learned.std <= 0:
        return 0.0
    return abs(window_mean - learned.mean) / learned.std


@dataclass(frozen=True)
class Drift:
    """A full window's distances: the largest of the features' (and which), and the predictions'."""

    records: int
    feature_drift: float
    feature: str
    prediction_drift: float


@dataclass
class DriftWindow:
    """Sums and counts of the records served since the last report; a feature's missing values are not counted."""

    names: tuple[str, ...]
    size: int
    records: int = 0
    sums: np.ndarray = field(init=False)
    counts: np.ndarray = field(init=False)
    prediction_sum: float = 0.0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"a drift window holds at least one record, not {self.size}")
        self.sums = np.zeros(len(self.names))
        self.counts = np.zeros(len(self.names))

    def add(self, matrix: np.ndarray, predictions: Sequence[float]) -> None:
        known = ~np.isnan(matrix)
        self.sums += np.where(known, matrix, 0.0).sum(axis=0)
        self.counts += known.sum(axis=0)
        self.prediction_sum += float(np.sum(predictions))
        self.records += matrix.shape[0]

    def report(self, profile: Profile) -> Drift | None:
        """The window's distances from `profile` once it holds `size` records (and a new window starts); None
        before."""
        if self.records < self.size:
            return None
        with np.errstate(invalid="ignore"):  # a feature missing from every record: 0 / 0, its mean unknown
            means = self.sums / self.counts
        shifts = {
            name: distance(float(means[i]), profile.features[name]) if name in profile.features else 0.0
            for i, name in enumerate(self.names)
        }
        worst = max(shifts, key=lambda name: shifts[name])
        drift = Drift(
            self.records,
            round(shifts[worst], 4),
            worst,
            round(distance(self.prediction_sum / self.records, profile.prediction), 4),
        )
        self.records, self.prediction_sum = 0, 0.0
        self.sums[:] = 0.0
        self.counts[:] = 0.0
        return drift
