"""The model in its fastest form: the same predictions as MLflow's own model, bit for bit, or not served."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression

from model_service.api import create_app
from model_service.compiled import (
    TreeEnsemble,
    compile_gradient_boosting,
    probe,
)
from model_service.settings import Settings
from tests.model_service.fitted import boosted, fitted, nudged
from tests.model_service.trackers import tracker_serving
from training.train import MODEL_NAME, store_compiled


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
