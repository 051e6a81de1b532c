"""The model in its fastest form: the same predictions as MLflow's own model, bit for bit, or not served."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

from model_service import model as model_module
from model_service.api import create_app
from model_service.compiled import (
    COMPILED_FILE,
    NotCompiled,
    TreeEnsemble,
    compile_gradient_boosting,
    probe,
    verified,
)
from model_service.model import FixedModel, ModelLoadError
from model_service.settings import Settings
from tests.model_service.trackers import tracker_serving
from training.train import MODEL_NAME, SKOPS_TRUSTED_TYPES, store_compiled

COLUMNS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def mlflows_own(served):
    """The champion as MLflow loads it for anyone (a notebook, a batch job): the reference."""
    mlflow.set_tracking_uri(served.tracking_uri)
    return mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{served.model.version}")


def test_the_trained_champion_is_served_from_its_arrays_with_mlflows_own_predictions(
    served, mlflows_own, sample_records
) -> None:
    assert served.model.form == "compiled" and served.model.predictor is None, "no wrapper was loaded"
    client = TestClient(create_app(Settings(max_batch_size=100), tracker_serving(served.model), served.contract))
    answered = client.post("/v1/predict", json={"records": sample_records}).json()["predictions"]
    # the features as training hands them to the model (its signature takes doubles: MLflow refuses int64)
    expected = mlflows_own.predict(pd.DataFrame.from_records(sample_records).astype("float64"))
    assert answered == [float(p) for p in expected]  # exactly: JSON carries a float64 without loss


def test_the_arrays_answer_every_split_and_missing_values_as_mlflow_does(served, mlflows_own) -> None:
    ensemble = compile_gradient_boosting(mlflows_own.get_raw_model())
    rows = probe(ensemble, seed=7)  # not the probe training checked
    assert np.isnan(rows).any(axis=1).sum() > 0
    expected = mlflows_own.predict(pd.DataFrame(rows, columns=list(ensemble.columns)))
    in_served_order = rows[:, [ensemble.columns.index(name) for name in served.model.feature_names]]
    assert np.array_equal(served.model.predict(in_served_order), expected)


def test_the_probe_puts_every_column_on_each_threshold_and_just_either_side_of_it(mlflows_own) -> None:
    ensemble = compile_gradient_boosting(mlflows_own.get_raw_model())
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


def test_loading_the_champion_imports_no_scikit_learn(served) -> None:
    """What a cold start saves: the arrays need NumPy alone (scikit-learn, skops and the SciPy statistics that
    scikit-learn imports took seconds; MLflow itself imports scipy.sparse, which is cheap)."""
    script = (
        "import sys; from model_service.model import Registry; from pipeline.contract import load_contracts\n"
        f"model = Registry({served.tracking_uri!r}).load({MODEL_NAME!r}, '1', "
        "load_contracts()['diabetes/patients'].features)\n"
        "print(model.form, sorted({'sklearn', 'skops', 'scipy.stats'} & set(sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.stdout.split("\n")[-2] == "compiled []", run.stderr[-2000:]


def _fitted(
    *steps, rows: int = 60, named: bool = True, missing: bool = True, empty_column: bool = False, columns=COLUMNS
):
    random = np.random.default_rng(1)
    features = random.normal(size=(rows, 3))
    target = features[:, 0] * 3 + features[:, 1]
    if missing:
        features[::7, 1] = np.nan
    if empty_column:
        features[:, 2] = np.nan
    frame = pd.DataFrame(features, columns=columns) if named else features
    return make_pipeline(*steps).fit(frame, target)


def _boosted(**parameters):
    return _fitted(SimpleImputer(strategy="median"), GradientBoostingRegressor(**parameters), rows=200)


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (
            lambda: _fitted(SimpleImputer(), LinearRegression()),
            "a model of steps ['SimpleImputer', 'LinearRegression']",
        ),
        (
            lambda: _fitted(GradientBoostingRegressor(n_estimators=5), missing=False),
            "a model of steps ['GradientBoostingRegressor']",
        ),
        (
            lambda: _fitted(SimpleImputer(add_indicator=True), GradientBoostingRegressor(n_estimators=5)),
            "the imputer adds indicator columns",
        ),
        (
            lambda: _fitted(
                SimpleImputer(missing_values=-1.0), GradientBoostingRegressor(n_estimators=5), missing=False
            ),
            "the imputer replaces -1.0, not NaN",
        ),
        (
            lambda: _fitted(SimpleImputer(), GradientBoostingRegressor(n_estimators=5), empty_column=True),
            "the imputer drops a column that was empty in training",
        ),
        (
            lambda: _fitted(SimpleImputer(), GradientBoostingRegressor(n_estimators=5, init=LinearRegression())),
            "init estimator is a LinearRegression",
        ),
        (
            lambda: _fitted(SimpleImputer(), GradientBoostingRegressor(n_estimators=5), named=False),
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
    model = _boosted(**parameters)
    ensemble = _verified(model)
    ensemble.save(tmp_path / COMPILED_FILE)
    stored = TreeEnsemble.load(tmp_path / COMPILED_FILE)
    rows = np.vstack([probe(ensemble), np.random.default_rng(3).normal(scale=3, size=(500, 3))])
    assert np.array_equal(stored.predict(rows), model.predict(pd.DataFrame(rows, columns=COLUMNS)))
    assert stored.predict(rows[:1]).shape == (1,)


def _verified(model, columns=COLUMNS) -> TreeEnsemble:
    return verified(compile_gradient_boosting(model), lambda rows: model.predict(pd.DataFrame(rows, columns=columns)))


def test_the_probe_takes_every_tree_to_every_leaf(mlflows_own) -> None:
    """What makes the check a proof for the leaves: a wrong value at any leaf shows in some probe row."""
    model = mlflows_own.get_raw_model()
    ensemble = compile_gradient_boosting(model)
    rows = model[0].transform(pd.DataFrame(probe(ensemble), columns=list(ensemble.columns))).astype(np.float32)
    for (tree,) in model[-1].estimators_:
        reached = set(tree.apply(rows).tolist())
        assert reached == set(np.flatnonzero(tree.tree_.children_left < 0).tolist())


def test_the_file_is_checked_again_at_load_with_numpy_alone(tmp_path) -> None:
    model = _boosted(n_estimators=10)
    _nudged(_verified(model)).save(tmp_path / COMPILED_FILE)  # damaged after its check was taken
    with pytest.raises(NotCompiled, match="do not answer their stored probe as the model did"):
        TreeEnsemble.load(tmp_path / COMPILED_FILE)
    with pytest.raises(NotCompiled, match=r"only a verified ensemble is stored"):
        compile_gradient_boosting(model).save(tmp_path / "unverified.npz")
    _verified(model).save(tmp_path / COMPILED_FILE)
    with np.load(tmp_path / COMPILED_FILE) as stored:
        arrays = dict(stored)
    np.savez(tmp_path / COMPILED_FILE, **{**arrays, "format": "tree-ensemble/2"})
    with pytest.raises(NotCompiled, match="is of format tree-ensemble/2, this service reads tree-ensemble/1"):
        TreeEnsemble.load(tmp_path / COMPILED_FILE)


def test_a_value_float32_cannot_hold_is_refused_as_scikit_learn_refuses_it() -> None:
    ensemble = compile_gradient_boosting(_boosted(n_estimators=5))
    for value in (np.inf, 1e39):
        with pytest.raises(ValueError, match="infinite or too large for float32"):
            ensemble.predict(np.array([[0.0, value, 0.0]]))


def test_the_columns_are_taken_in_the_order_the_model_was_fitted_on(tmp_path) -> None:
    """Fitted on c, a, b with a signature of a, b, c: the matrix follows the fit, as the API builds it."""
    fitted = ["c", "a", "b"]
    model = _fitted(SimpleImputer(), GradientBoostingRegressor(n_estimators=10), columns=fitted)
    mlflow.sklearn.save_model(
        model,
        tmp_path / "m",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        signature=mlflow.models.infer_signature(pd.DataFrame(np.zeros((1, 3)), columns=COLUMNS), np.zeros(1)),
    )
    _verified(model, fitted).save(tmp_path / "m" / COMPILED_FILE)
    loaded = FixedModel(str(tmp_path / "m")).load("m", "fixed", tuple(COLUMNS))
    assert loaded.feature_names == tuple(fitted) and loaded.predictor is None
    rows = np.random.default_rng(2).normal(size=(50, 3))
    assert loaded.predict(rows) == model.predict(pd.DataFrame(rows, columns=fitted)).tolist()


def _nudged(ensemble: TreeEnsemble, which: int = 0) -> TreeEnsemble:
    """The ensemble with one leaf's value a billionth off (one float64 step would vanish in the sum): a compiled
    form that is wrong at one leaf of one tree."""
    value = ensemble.value.copy()
    value[ensemble.leaves()[which]] += 1e-9
    return replace(ensemble, value=value)


def test_arrays_wrong_at_any_one_leaf_are_refused() -> None:
    model = _boosted(n_estimators=10, max_depth=5)
    ensemble = compile_gradient_boosting(model)
    leaves = len(ensemble.leaves())
    for which in (*range(0, leaves, 7), leaves - 1):
        with pytest.raises(NotCompiled, match=r"the compiled form answered \d+ of \d+ probe rows differently"):
            verified(_nudged(ensemble, which), lambda rows: model.predict(pd.DataFrame(rows, columns=COLUMNS)))


class Recorder:
    """A stand-in for MlflowClient's log_model_artifact: what training stores in the model's directory."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, TreeEnsemble]] = []

    def log_model_artifact(self, model_id: str, path: str) -> None:
        self.stored.append((model_id, TreeEnsemble.load(Path(path))))


def test_training_stores_the_arrays_only_when_they_answer_as_the_model(monkeypatch) -> None:
    model, client = _boosted(n_estimators=10), Recorder()
    assert store_compiled(client, "m-1", model) == "yes"
    ((model_id, ensemble),) = client.stored
    assert model_id == "m-1" and np.array_equal(ensemble.value, compile_gradient_boosting(model).value)

    linear = _fitted(SimpleImputer(), LinearRegression())
    assert store_compiled(client, "m-2", linear).startswith("no: a model of steps ['SimpleImputer'")
    import model_service.compiled as compiled_module

    real = compiled_module.compile_gradient_boosting
    monkeypatch.setattr(compiled_module, "compile_gradient_boosting", lambda m: _nudged(real(m)))
    assert re.fullmatch(
        r"no: the compiled form answered \d+ of \d+ probe rows differently", store_compiled(client, "m-3", model)
    )
    monkeypatch.undo()

    class Refusing(Recorder):
        def log_model_artifact(self, model_id: str, path: str) -> None:
            raise RuntimeError("AccessDenied: s3:PutObject")

    assert store_compiled(Refusing(), "m-4", model) == "no: RuntimeError: AccessDenied: s3:PutObject"
    assert [model_id for model_id, _ in client.stored] == ["m-1"], "nothing stored for a model that does not compile"


def _saved(model, path):
    mlflow.sklearn.save_model(
        model,
        path,
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        signature=mlflow.models.infer_signature(pd.DataFrame(np.zeros((1, 3)), columns=COLUMNS), np.zeros(1)),
    )
    return str(path)


def _events(caplog, name: str) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if f'"{name}"' in r.getMessage()]


def test_a_model_registered_without_arrays_is_compiled_at_load_if_it_answers_as_mlflow(tmp_path) -> None:
    model = _boosted(n_estimators=10)
    loaded = FixedModel(_saved(model, tmp_path / "m")).load("m", "fixed", tuple(COLUMNS))
    assert loaded.form == "compiled" and loaded.predictor is not None
    rows = probe(compile_gradient_boosting(model), seed=11)
    assert loaded.predict(rows) == model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()


def test_a_model_compiled_at_load_that_answers_differently_serves_through_mlflow(tmp_path, monkeypatch, caplog) -> None:
    model = _boosted(n_estimators=10)
    real = model_module.compile_gradient_boosting
    monkeypatch.setattr(model_module, "compile_gradient_boosting", lambda m: _nudged(real(m)))
    with caplog.at_level(logging.INFO, logger="model_service"):
        loaded = FixedModel(_saved(model, tmp_path / "m")).load("m", "fixed", tuple(COLUMNS))
    assert loaded.form == "mlflow pyfunc"
    (event,) = _events(caplog, "model_not_compiled")
    assert re.fullmatch(r"the compiled form answered \d+ of \d+ probe rows differently", event["reason"])
    rows = probe(real(model), seed=5)
    assert loaded.predict(rows) == model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()


def test_a_model_of_another_shape_serves_through_mlflow_and_says_why(tmp_path, caplog) -> None:
    model = _fitted(SimpleImputer(), LinearRegression())
    with caplog.at_level(logging.INFO, logger="model_service"):
        loaded = FixedModel(_saved(model, tmp_path / "linear")).load("linear", "fixed", tuple(COLUMNS))
    assert loaded.form == "mlflow pyfunc"
    (event,) = _events(caplog, "model_not_compiled")
    assert "LinearRegression" in event["reason"]
    rows = np.array([[0.5, np.nan, -1.0], [1.0, 2.0, 3.0]])
    assert loaded.predict(rows) == model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()


def test_stored_arrays_of_other_features_stop_the_load_and_unreadable_ones_fall_back(tmp_path, caplog) -> None:
    model = _boosted(n_estimators=10)
    folder = tmp_path / "m"
    _saved(model, folder)
    replace(_verified(model), columns=("a", "b", "x")).save(folder / COMPILED_FILE)
    with pytest.raises(
        ModelLoadError, match=r"its compiled\.npz takes \['a', 'b', 'x'\], its signature \['a', 'b', 'c'\]"
    ):
        FixedModel(str(folder)).load("m", "fixed", tuple(COLUMNS))
    (folder / COMPILED_FILE).write_bytes(b"not a zip")
    with caplog.at_level(logging.INFO, logger="model_service"):
        loaded = FixedModel(str(folder)).load("m", "fixed", tuple(COLUMNS))
    assert loaded.form == "compiled" and loaded.predictor is not None, "compiled at load instead"
    (event,) = _events(caplog, "model_not_compiled")
    assert event["reason"].startswith("compiled.npz not used: ")
