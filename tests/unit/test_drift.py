"""Drift as the service measures it (pipeline/drift.py): a window's means against the training profile, in the
training data's standard deviations; missing values left out; a report only once a window is full."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.drift import DriftWindow, Moments, Profile, distance, profile_of

NAN = math.nan


def test_a_profile_holds_each_features_and_the_predictions_mean_and_spread_and_survives_json() -> None:
    matrix = np.array([[1.0, 10.0], [3.0, NAN], [5.0, 30.0]])
    profile = profile_of(matrix, ("a", "b"), np.array([2.0, 4.0]))
    assert profile.features["a"] == Moments(3.0, pytest.approx(math.sqrt(8 / 3)))
    assert profile.features["b"] == Moments(20.0, 10.0), "a missing value is not a zero"
    assert profile.prediction == Moments(3.0, 1.0) and profile.rows == 3
    assert Profile.from_json(profile.to_json()) == profile
    empty = profile_of(np.array([[NAN], [NAN]]), ("c",), np.array([1.0, 1.0]))
    assert math.isnan(empty.features["c"].mean)


def test_distance_is_the_shift_in_training_standard_deviations() -> None:
    assert distance(12.0, Moments(10.0, 4.0)) == 0.5
    assert distance(8.0, Moments(10.0, 4.0)) == 0.5, "either way"
    assert distance(10.0, Moments(10.0, 0.0)) == 0.0
    assert distance(10.5, Moments(10.0, 0.0)) > 1e6, "a feature that never varied has moved by any change"
    assert distance(NAN, Moments(10.0, 1.0)) == 0.0 and distance(1.0, Moments(NAN, NAN)) == 0.0


PROFILE = Profile({"a": Moments(0.0, 1.0), "b": Moments(100.0, 10.0)}, Moments(50.0, 5.0), 1000)


def test_a_window_reports_once_full_then_starts_again() -> None:
    window = DriftWindow(("a", "b"), size=4)
    window.add(np.array([[2.0, 100.0], [2.0, NAN]]), [50.0, 50.0])
    assert window.report(PROFILE) is None, "half a window says nothing"
    window.add(np.array([[2.0, 130.0], [2.0, 100.0]]), [60.0, 60.0])
    drift = window.report(PROFILE)
    assert drift is not None and drift.records == 4
    assert (drift.feature, drift.feature_drift) == ("a", 2.0), "a: mean 2 against 0 +- 1; b: 110 against 100 +- 10"
    assert drift.prediction_drift == 1.0, "predictions: mean 55 against 50 +- 5"
    assert window.report(PROFILE) is None and window.records == 0, "a new window"
    window.add(np.array([[0.0, 100.0]] * 4), [50.0] * 4)
    again = window.report(PROFILE)
    assert again is not None and again.feature_drift == 0.0 and again.prediction_drift == 0.0


def test_the_worst_feature_is_named_and_an_unprofiled_one_counts_for_nothing() -> None:
    window = DriftWindow(("a", "b", "new"), size=1)
    window.add(np.array([[0.5, 140.0, 1e9]]), [50.0])
    drift = window.report(PROFILE)
    assert drift is not None and drift.feature == "b" and drift.feature_drift == 4.0


def test_a_window_holds_at_least_one_record() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        DriftWindow(("a",), size=0)
