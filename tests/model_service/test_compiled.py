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
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression

from model_service import model as model_module
from model_service.api import create_app
from model_service.compiled import (
    COMPILED_FILE,
    TreeEnsemble,
    compile_gradient_boosting,
    probe,
)
from model_service.model import FixedModel, ModelLoadError
from model_service.settings import Settings
from tests.model_service.fitted import COLUMNS, boosted, fitted, nudged, verified_form
from tests.model_service.trackers import tracker_serving
from training.train import MODEL_NAME, SKOPS_TRUSTED_TYPES, store_compiled


@pytest.fixture(scope="module")
def mlflows_own(served):
    """The champion as MLflow loads it for anyone (a notebook, a batch job): the reference."""
    # both URIs: a test before may have left the registry URI at a server that has stopped since
    mlflow.set_tracking_uri(served.tracking_uri)
    mlflow.set_registry_uri(served.tracking_uri)
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


def test_the_columns_are_taken_in_the_order_the_model_was_fitted_on(tmp_path) -> None:
    """Fitted on c, a, b with a signature of a, b, c: the matrix follows the fit, as the API builds it."""
    order = ["c", "a", "b"]
    model = fitted(SimpleImputer(), GradientBoostingRegressor(n_estimators=10), columns=order)
    mlflow.sklearn.save_model(
        model,
        tmp_path / "m",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        signature=mlflow.models.infer_signature(pd.DataFrame(np.zeros((1, 3)), columns=COLUMNS), np.zeros(1)),
    )
    verified_form(model, order).save(tmp_path / "m" / COMPILED_FILE)
    loaded = FixedModel(str(tmp_path / "m")).load("m", "fixed", tuple(COLUMNS))
    assert loaded.feature_names == tuple(order) and loaded.predictor is None
    rows = np.random.default_rng(2).normal(size=(50, 3))
    assert loaded.predict(rows) == model.predict(pd.DataFrame(rows, columns=order)).tolist()


class Recorder:
    """A stand-in for MlflowClient's log_model_artifact: what training stores in the model's directory."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, TreeEnsemble]] = []

    def log_model_artifact(self, model_id: str, path: str) -> None:
        self.stored.append((model_id, TreeEnsemble.load(Path(path))))


def test_training_stores_the_arrays_only_when_they_answer_as_the_model(monkeypatch) -> None:
    model, client = boosted(n_estimators=10), Recorder()
    assert store_compiled(client, "m-1", model) == "yes"
    ((model_id, ensemble),) = client.stored
    assert model_id == "m-1" and np.array_equal(ensemble.value, compile_gradient_boosting(model).value)

    linear = fitted(SimpleImputer(), LinearRegression())
    assert store_compiled(client, "m-2", linear).startswith("no: a model of steps ['SimpleImputer'")
    import model_service.compiled as compiled_module

    real = compiled_module.compile_gradient_boosting
    monkeypatch.setattr(compiled_module, "compile_gradient_boosting", lambda m: nudged(real(m)))
    assert re.fullmatch(
        r"no: the compiled form answered \d+ of \d+ probe rows differently", store_compiled(client, "m-3", model)
    )
    monkeypatch.undo()

    class Refusing(Recorder):
        def log_model_artifact(self, model_id: str, path: str) -> None:
            raise RuntimeError("AccessDenied: s3:PutObject")

    assert store_compiled(Refusing(), "m-4", model) == "no: RuntimeError: AccessDenied: s3:PutObject"
    monkeypatch.setitem(sys.modules, "model_service.compiled", None)  # training without the service's code
    assert store_compiled(client, "m-5", model).startswith("no: import of model_service.compiled halted")
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
    model = boosted(n_estimators=10)
    loaded = FixedModel(_saved(model, tmp_path / "m")).load("m", "fixed", tuple(COLUMNS))
    assert loaded.form == "compiled" and loaded.predictor is not None
    rows = probe(compile_gradient_boosting(model), seed=11)
    assert loaded.predict(rows) == model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()


def test_a_model_compiled_at_load_that_answers_differently_serves_through_mlflow(tmp_path, monkeypatch, caplog) -> None:
    model = boosted(n_estimators=10)
    real = model_module.compile_gradient_boosting
    monkeypatch.setattr(model_module, "compile_gradient_boosting", lambda m: nudged(real(m)))
    with caplog.at_level(logging.INFO, logger="model_service"):
        loaded = FixedModel(_saved(model, tmp_path / "m")).load("m", "fixed", tuple(COLUMNS))
    assert loaded.form == "mlflow pyfunc"
    (event,) = _events(caplog, "model_not_compiled")
    assert re.fullmatch(r"the compiled form answered \d+ of \d+ probe rows differently", event["reason"])
    rows = probe(real(model), seed=5)
    assert loaded.predict(rows) == model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()


def test_a_model_of_another_shape_serves_through_mlflow_and_says_why(tmp_path, caplog) -> None:
    model = fitted(SimpleImputer(), LinearRegression())
    with caplog.at_level(logging.INFO, logger="model_service"):
        loaded = FixedModel(_saved(model, tmp_path / "linear")).load("linear", "fixed", tuple(COLUMNS))
    assert loaded.form == "mlflow pyfunc"
    (event,) = _events(caplog, "model_not_compiled")
    assert "LinearRegression" in event["reason"]
    rows = np.array([[0.5, np.nan, -1.0], [1.0, 2.0, 3.0]])
    assert loaded.predict(rows) == model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()


def test_stored_arrays_of_other_features_stop_the_load_and_unreadable_ones_fall_back(tmp_path, caplog) -> None:
    model = boosted(n_estimators=10)
    folder = tmp_path / "m"
    _saved(model, folder)
    replace(verified_form(model), columns=("a", "b", "x")).save(folder / COMPILED_FILE)
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
