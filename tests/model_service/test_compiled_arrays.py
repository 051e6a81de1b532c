"""The compiled form against scikit-learn alone (no MLflow, so fast enough for the mutation run): the shapes it
compiles and refuses, the probe's reach, bit-for-bit answers, the stored check."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression

from model_service.compiled import COMPILED_FILE, NotCompiled, TreeEnsemble, compile_gradient_boosting, probe, verified
from tests.model_service.fitted import COLUMNS, boosted, fitted, nudged, verified_form


def test_the_probe_puts_every_column_on_each_threshold_and_just_either_side_of_it() -> None:
    ensemble = compile_gradient_boosting(boosted(n_estimators=30, max_depth=4))
    rows = probe(ensemble)
    cuts = ensemble.thresholds()
    assert set(cuts) == set(range(len(ensemble.columns))), "every feature is split on somewhere"
    for column, values in cuts.items():
        present = set(rows[:, column][~np.isnan(rows[:, column])].tolist())
        single = values.astype(np.float32)
        for near in (
            values,
            np.nextafter(single, np.float32(-np.inf)),
            np.nextafter(single, np.float32(np.inf)),
            np.nextafter(values, -np.inf),
            np.nextafter(values, np.inf),
        ):
            assert set(near.astype(np.float64).tolist()) <= present, ensemble.columns[column]
        assert np.isnan(rows[:, column]).any()


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (
            lambda: fitted(SimpleImputer(), LinearRegression()),
            "a model of steps ['SimpleImputer', 'LinearRegression']",
        ),
        (
            lambda: fitted(GradientBoostingRegressor(n_estimators=5), missing=False),
            "a model of steps ['GradientBoostingRegressor']",
        ),
        (
            lambda: fitted(SimpleImputer(add_indicator=True), GradientBoostingRegressor(n_estimators=5)),
            "the imputer adds indicator columns",
        ),
        (
            lambda: fitted(
                SimpleImputer(missing_values=-1.0), GradientBoostingRegressor(n_estimators=5), missing=False
            ),
            "the imputer replaces -1.0, not NaN",
        ),
        (
            lambda: fitted(SimpleImputer(), GradientBoostingRegressor(n_estimators=5), empty_column=True),
            "the imputer drops a column that was empty in training",
        ),
        (
            lambda: fitted(SimpleImputer(), GradientBoostingRegressor(n_estimators=5, init=LinearRegression())),
            "init estimator is a LinearRegression",
        ),
        (
            lambda: fitted(SimpleImputer(), GradientBoostingRegressor(n_estimators=5), named=False),
            "not fitted on named features",
        ),
    ],
)
def test_a_model_of_another_shape_is_not_compiled_and_says_why(model, reason) -> None:
    with pytest.raises(NotCompiled, match=re.escape(reason)):
        compile_gradient_boosting(model())


@pytest.mark.parametrize(
    "parameters",
    [
        {"n_estimators": 20, "max_depth": 4, "learning_rate": 0.3},  # deeper trees, with leaves at every depth
        {"n_estimators": 20, "init": "zero", "loss": "huber"},
        {"n_estimators": 20, "init": DummyRegressor(strategy="quantile", quantile=0.3)},
    ],
)
def test_the_shapes_it_compiles_answer_as_scikit_learn_does_and_survive_the_file(parameters, tmp_path) -> None:
    model = boosted(**parameters)
    ensemble = verified_form(model)
    ensemble.save(tmp_path / COMPILED_FILE)
    stored = TreeEnsemble.load(tmp_path / COMPILED_FILE)
    rows = np.vstack([probe(ensemble), np.random.default_rng(3).normal(scale=3, size=(500, 3))])
    assert np.array_equal(stored.predict(rows), model.predict(pd.DataFrame(rows, columns=COLUMNS)))
    assert stored.predict(rows[:1]).shape == (1,)


def test_the_probe_takes_every_tree_to_every_leaf() -> None:
    """What makes the check a proof for the leaves: a wrong value at any leaf shows in some probe row."""
    model = boosted(n_estimators=30, max_depth=4)
    ensemble = compile_gradient_boosting(model)
    rows = model[0].transform(pd.DataFrame(probe(ensemble), columns=list(ensemble.columns))).astype(np.float32)
    for (tree,) in model[-1].estimators_:
        reached = set(tree.apply(rows).tolist())
        assert reached == set(np.flatnonzero(tree.tree_.children_left < 0).tolist())


def test_the_file_is_checked_again_at_load_with_numpy_alone(tmp_path) -> None:
    model = boosted(n_estimators=10)
    nudged(verified_form(model)).save(tmp_path / COMPILED_FILE)  # damaged after its check was taken
    with pytest.raises(NotCompiled, match="do not answer their stored probe as the model did"):
        TreeEnsemble.load(tmp_path / COMPILED_FILE)
    with pytest.raises(NotCompiled, match=r"only a verified ensemble is stored"):
        compile_gradient_boosting(model).save(tmp_path / "unverified.npz")
    verified_form(model).save(tmp_path / COMPILED_FILE)
    with np.load(tmp_path / COMPILED_FILE) as stored:
        arrays = dict(stored)
    np.savez(tmp_path / COMPILED_FILE, **{**arrays, "format": "tree-ensemble/2"})
    with pytest.raises(NotCompiled, match="is of format tree-ensemble/2, this service reads tree-ensemble/1"):
        TreeEnsemble.load(tmp_path / COMPILED_FILE)


def test_a_value_float32_cannot_hold_is_refused_as_scikit_learn_refuses_it() -> None:
    ensemble = compile_gradient_boosting(boosted(n_estimators=5))
    for value in (np.inf, 1e39):
        with pytest.raises(ValueError, match="infinite or too large for float32"):
            ensemble.predict(np.array([[0.0, value, 0.0]]))


def test_arrays_wrong_at_any_one_leaf_are_refused() -> None:
    model = boosted(n_estimators=10, max_depth=5)
    ensemble = compile_gradient_boosting(model)
    leaves = len(ensemble.leaves())
    for which in (*range(0, leaves, 7), leaves - 1):
        with pytest.raises(NotCompiled, match=r"the compiled form answered \d+ of \d+ probe rows differently"):
            verified(nudged(ensemble, which), lambda rows: model.predict(pd.DataFrame(rows, columns=COLUMNS)))
