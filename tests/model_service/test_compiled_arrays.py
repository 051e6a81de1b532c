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

from model_service.compiled import (
    BLOCK_ROWS,
    COMPILED_FILE,
    NotCompiled,
    TreeEnsemble,
    compile_gradient_boosting,
    probe,
    verified,
)
from tests.model_service.fitted import COLUMNS, boosted, fitted, nudged, verified_form


def _splits(model) -> dict[int, np.ndarray]:
    """Per column, the thresholds of the model's own trees (scikit-learn's arrays, not the compiled ones)."""
    found: dict[int, set[float]] = {}
    for (tree,) in model[-1].estimators_:
        split = tree.tree_.children_left >= 0
        for column, cut in zip(tree.tree_.feature[split], tree.tree_.threshold[split], strict=True):
            found.setdefault(int(column), set()).add(float(cut))
    return {column: np.array(sorted(cuts)) for column, cuts in found.items()}


def test_the_probe_puts_every_column_on_each_threshold_and_just_either_side_of_it() -> None:
    model = boosted(n_estimators=30, max_depth=4)
    ensemble = compile_gradient_boosting(model)
    rows = probe(ensemble)
    cuts = _splits(model)
    assert {c: v.tolist() for c, v in ensemble.thresholds().items()} == {c: v.tolist() for c, v in cuts.items()}
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
            lambda: fitted(GradientBoostingRegressor(n_estimators=5), missing=False)[-1],  # not in a Pipeline
            "a model of steps ['GradientBoostingRegressor']",
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
            "the boosting's init estimator is a LinearRegression: not a constant",
        ),
        (
            lambda: fitted(SimpleImputer(), GradientBoostingRegressor(n_estimators=5), named=False),
            "the model was not fitted on named features",
        ),
    ],
)
def test_a_model_of_another_shape_is_not_compiled_and_says_why(model, reason) -> None:
    with pytest.raises(NotCompiled, match=f"^{re.escape(reason)}"):
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
    assert (stored.columns, stored.init, stored.scale, stored.depth) == (
        ensemble.columns,
        ensemble.init,
        ensemble.scale,
        ensemble.depth,
    )
    for name in ("statistics", "roots", "feature", "threshold", "children", "value", "check_answers"):
        assert np.array_equal(getattr(stored, name), getattr(ensemble, name)), name
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
    with pytest.raises(
        NotCompiled, match=r"^its arrays do not answer their stored probe as the model did: damaged, or another NumPy$"
    ):
        TreeEnsemble.load(tmp_path / COMPILED_FILE)
    with pytest.raises(NotCompiled, match=r"^only a verified ensemble is stored \(verified\(\)\)$"):
        compile_gradient_boosting(model).save(tmp_path / "unverified.npz")
    verified_form(model).save(tmp_path / COMPILED_FILE)
    with np.load(tmp_path / COMPILED_FILE) as stored:
        arrays = dict(stored)
    np.savez(tmp_path / COMPILED_FILE, **{**arrays, "format": "tree-ensemble/2"})
    with pytest.raises(
        NotCompiled, match=r"^compiled\.npz is of format tree-ensemble/2, this service reads tree-ensemble/1$"
    ):
        TreeEnsemble.load(tmp_path / COMPILED_FILE)


def test_a_value_float32_cannot_hold_is_refused_as_scikit_learn_refuses_it() -> None:
    ensemble = compile_gradient_boosting(boosted(n_estimators=5))
    for value in (np.inf, 1e39):
        with pytest.raises(
            ValueError, match=r"^a value is infinite or too large for float32: the model cannot score it$"
        ):
            ensemble.predict(np.array([[0.0, value, 0.0]]))


def test_arrays_wrong_at_any_one_leaf_are_refused() -> None:
    model = boosted(n_estimators=10, max_depth=5)
    ensemble = compile_gradient_boosting(model)
    leaves = len(ensemble.leaves())
    for which in (*range(0, leaves, 7), leaves - 1):
        with pytest.raises(NotCompiled, match=r"the compiled form answered \d+ of \d+ probe rows differently"):
            verified(nudged(ensemble, which), lambda rows: model.predict(pd.DataFrame(rows, columns=COLUMNS)))


def test_the_probe_is_the_same_every_time_for_a_seed() -> None:
    """Training and a later load check the same rows."""
    ensemble = compile_gradient_boosting(boosted(n_estimators=5))
    assert np.array_equal(probe(ensemble), probe(ensemble), equal_nan=True)
    assert not np.array_equal(probe(ensemble), probe(ensemble, seed=1), equal_nan=True)
    assert len(probe(ensemble, rows=700)) == len(ensemble.leaf_rows()) + 700


def test_a_refused_form_says_how_many_probe_rows_it_answered_differently() -> None:
    model = boosted(n_estimators=10)
    wrong = nudged(compile_gradient_boosting(model))
    rows = probe(wrong)
    differing = int(np.sum(wrong.predict(rows) != model.predict(pd.DataFrame(rows, columns=COLUMNS))))
    assert 0 < differing < len(rows)
    with pytest.raises(NotCompiled, match=f"^the compiled form answered {differing} of {len(rows)} probe rows"):
        verified(wrong, lambda matrix: model.predict(pd.DataFrame(matrix, columns=COLUMNS)))


def test_a_large_batch_is_scored_in_blocks(monkeypatch) -> None:
    """10,000 rows at once took 57 MiB of per-tree arrays: no block is larger than BLOCK_ROWS, all rows answered."""
    model = boosted(n_estimators=5)
    ensemble = compile_gradient_boosting(model)
    sizes: list[int] = []
    whole = TreeEnsemble._predict_block
    monkeypatch.setattr(TreeEnsemble, "_predict_block", lambda self, m: sizes.append(len(m)) or whole(self, m))
    rows = np.random.default_rng(4).normal(size=(BLOCK_ROWS * 2 + 3, 3))
    assert np.array_equal(ensemble.predict(rows), model.predict(pd.DataFrame(rows, columns=COLUMNS)))
    assert sizes == [BLOCK_ROWS, BLOCK_ROWS, 3]
    sizes.clear()
    ensemble.predict(rows[:BLOCK_ROWS])
    assert sizes == [BLOCK_ROWS]


def test_a_file_holding_pickled_objects_is_refused(tmp_path) -> None:
    """The file comes from the registry's store: loading it never unpickles (which could run code)."""
    model = boosted(n_estimators=5)
    verified_form(model).save(tmp_path / COMPILED_FILE)
    with np.load(tmp_path / COMPILED_FILE) as stored:
        arrays = dict(stored)
    np.savez(tmp_path / COMPILED_FILE, **{**arrays, "columns": np.array(["a", "b", "c"], dtype=object)})
    with pytest.raises(ValueError, match="allow_pickle=False"):
        TreeEnsemble.load(tmp_path / COMPILED_FILE)
