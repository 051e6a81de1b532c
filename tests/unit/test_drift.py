"""Drift as the service measures it (pipeline/drift.py): a window's means against the training profile, in the
training data's standard deviations; missing values left out; a report only once a window is full."""

from __future__ import annotations

import math
import warnings

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
    small = Profile({"b": Moments(2.0, 0.5), "a": Moments(1.0, 0.25)}, Moments(3.0, 1.0), 7)
    assert small.to_json() == (
        '{"features": {"a": [1.0, 0.25], "b": [2.0, 0.5]}, "prediction": [3.0, 1.0], "rows": 7}'
    ), "sorted: the same profile is the same file"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice": a column never given is unknown, quietly
        empty = profile_of(np.array([[NAN], [NAN]]), ("c",), np.array([1.0, 1.0]))
    assert math.isnan(empty.features["c"].mean) and math.isnan(empty.features["c"].std)


def test_distance_is_the_shift_in_training_standard_deviations() -> None:
    assert distance(12.0, Moments(10.0, 4.0)) == 0.5
    assert distance(8.0, Moments(10.0, 4.0)) == 0.5, "either way"
    assert distance(10.0, Moments(10.0, 0.0)) == 0.0
    assert distance(10.5, Moments(10.0, 0.0)) == 0.0, "a feature that never varied: no scale, not measured"
    assert distance(10.5, Moments(10.0, -1.0)) == 0.0
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
    window.add(np.array([[0.5, 100.0]] * 4), [51.0] * 4)
    again = window.report(PROFILE)
    assert again is not None and (again.feature, again.feature_drift, again.prediction_drift) == ("a", 0.5, 0.2), (
        "the first window's sums and counts are gone"
    )


def test_a_missing_value_is_left_out_of_its_features_mean_and_a_feature_never_given_is_no_drift() -> None:
    window = DriftWindow(("a", "b"), size=2)
    window.add(np.array([[NAN, NAN], [2.0, NAN]]), [50.0, 50.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # b's mean is 0 / 0: unknown, without a warning per window
        drift = window.report(PROFILE)
    assert drift is not None and (drift.feature, drift.feature_drift) == ("a", 2.0)


def test_distances_are_rounded_to_four_places() -> None:
    window = DriftWindow(("a",), size=3)
    window.add(np.array([[1.0], [0.0], [0.0]]), [50.0, 50.0, 51.0])
    drift = window.report(PROFILE)
    assert drift is not None and drift.feature_drift == 0.3333 and drift.prediction_drift == 0.0667


def test_the_worst_feature_is_named_and_an_unprofiled_one_counts_for_nothing() -> None:
    window = DriftWindow(("a", "b", "new"), size=1)
    window.add(np.array([[0.5, 140.0, 1e9]]), [50.0])
    drift = window.report(PROFILE)
    assert drift is not None and drift.feature == "b" and drift.feature_drift == 4.0
    unknown = DriftWindow(("a", "new"), size=1)
    unknown.add(np.array([[0.0, 1e9]]), [50.0])
    quiet = unknown.report(PROFILE)
    assert quiet is not None and quiet.feature_drift == 0.0, "a feature the model did not learn: not measured"


def test_a_window_holds_at_least_one_record() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        DriftWindow(("a",), size=0)
