"""model_service/model.py: loading a version in its fastest form, and asking the registry which version an alias
names, with models saved in a temporary folder (no server, no training run) and the registry's client replaced
where its answers are the point, so that these run once per mutant (scripts/mutation.py). The served champion's
tests (test_compiled.py, test_api.py) load through a real MLflow server."""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression

from model_service import model as model_module
from model_service.compiled import COMPILED_FILE, NotCompiled, compile_gradient_boosting, probe
from model_service.model import (
    FIXED_VERSION,
    FixedModel,
    LoadedModel,
    ModelLoadError,
    NoModelYet,
    Registry,
    _compiled_here,
    _first_line,
    load_model,
)
from tests.model_service.fitted import COLUMNS, boosted, fitted, nudged, verified_form
from training.train import SKOPS_TRUSTED_TYPES


def test_the_columns_are_taken_in_the_order_the_model_was_fitted_on(tmp_path) -> None:
    """Fitted on c, a, b with a signature of a, b, c: the matrix follows the fit, as the API builds it."""
    order = ["c", "a", "b"]
    model = fitted(SimpleImputer(), GradientBoostingRegressor(n_estimators=10), columns=order)
    _saved(model, tmp_path / "m")
    verified_form(model, order).save(tmp_path / "m" / COMPILED_FILE)
    loaded = FixedModel(str(tmp_path / "m")).load("m", "fixed", tuple(COLUMNS))
    assert loaded.feature_names == tuple(order) and loaded.predictor is None
    rows = np.random.default_rng(2).normal(size=(50, 3))
    assert loaded.predict(rows) == model.predict(pd.DataFrame(rows, columns=order)).tolist()


def _saved(model, path):
    """`model` saved as training logs it (skops, a signature of the columns a, b, c); its requirements stated, as
    MLflow would otherwise infer them by importing the model in another process (seconds a save)."""
    mlflow.sklearn.save_model(
        model,
        path,
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=["scikit-learn"],
        signature=mlflow.models.infer_signature(pd.DataFrame(np.zeros((1, 3)), columns=COLUMNS), np.zeros(1)),
    )
    return str(path)


def _events(caplog, name: str) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if f'"{name}"' in r.getMessage()]


def test_a_model_registered_without_arrays_is_compiled_at_load_if_it_answers_as_mlflow(tmp_path) -> None:
    model = boosted(n_estimators=10)
    loaded = FixedModel(_saved(model, tmp_path / "m")).load("m", "fixed", tuple(COLUMNS))
    assert loaded.form == "compiled" and loaded.predictor is not None and loaded.feature_names == tuple(COLUMNS)
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
    assert event["model"] == str(tmp_path / "m")
    rows = probe(real(model), seed=5)
    assert loaded.predict(rows) == model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()


def test_a_model_of_another_shape_serves_through_mlflow_and_says_why(tmp_path, caplog) -> None:
    model = fitted(SimpleImputer(), LinearRegression())
    with caplog.at_level(logging.INFO, logger="model_service"):
        loaded = FixedModel(_saved(model, tmp_path / "linear")).load("linear", "fixed", tuple(COLUMNS))
    assert loaded.form == "mlflow pyfunc"
    (event,) = _events(caplog, "model_not_compiled")
    assert "LinearRegression" in event["reason"] and event["model"] == str(tmp_path / "linear")
    rows = np.array([[0.5, np.nan, -1.0], [1.0, 2.0, 3.0]])
    assert loaded.predict(rows) == model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()


def test_stored_arrays_of_other_features_stop_the_load_and_unreadable_ones_fall_back(tmp_path, caplog) -> None:
    model = boosted(n_estimators=10)
    folder = tmp_path / "m"
    _saved(model, folder)
    replace(verified_form(model), columns=("a", "b", "x")).save(folder / COMPILED_FILE)
    with pytest.raises(ModelLoadError) as refused:
        FixedModel(str(folder)).load("m", "fixed", tuple(COLUMNS))
    assert str(refused.value) == (
        f"{folder}: its compiled.npz takes ['a', 'b', 'x'], its signature ['a', 'b', 'c']: the file is not this "
        "model's; register the model again with python -m training.train"
    )
    (folder / COMPILED_FILE).write_bytes(b"not a zip")
    with caplog.at_level(logging.INFO, logger="model_service"):
        loaded = FixedModel(str(folder)).load("m", "fixed", tuple(COLUMNS))
    assert loaded.form == "compiled" and loaded.predictor is not None, "compiled at load instead"
    (event,) = _events(caplog, "model_not_compiled")
    assert event["reason"].startswith("compiled.npz not used: ") and event["model"] == str(folder)


def test_the_training_profile_beside_a_model_is_loaded_with_it_in_either_form_and_a_bad_one_is_said(
    tmp_path, caplog
) -> None:
    from pipeline.drift import PROFILE_FILE, Moments, Profile

    profile = Profile({"a": Moments(1.0, 2.0), "b": Moments(3.0, 4.0), "c": Moments(5.0, 6.0)}, Moments(7, 8), 9)
    model = boosted(n_estimators=10)
    folder = tmp_path / "m"
    _saved(model, folder)
    with caplog.at_level(logging.INFO, logger="model_service"):
        assert FixedModel(str(folder)).load("m", "fixed", tuple(COLUMNS)).profile is None, "none stored: none"
    (missing,) = _events(caplog, "drift_not_measured")
    assert missing["reason"] == f"no {PROFILE_FILE} beside the model" and missing["model"] == str(folder)
    caplog.clear()
    (folder / PROFILE_FILE).write_text(profile.to_json())
    wrapped = FixedModel(str(folder)).load("m", "fixed", tuple(COLUMNS))
    assert wrapped.profile == profile and wrapped.predictor is not None, "compiled here: the profile all the same"
    verified_form(model).save(folder / COMPILED_FILE)
    stored = FixedModel(str(folder)).load("m", "fixed", tuple(COLUMNS))
    assert stored.profile == profile and stored.predictor is None, "its stored arrays: the profile too"
    (folder / PROFILE_FILE).write_text('{"features": {}}')
    with caplog.at_level(logging.INFO, logger="model_service"):
        assert FixedModel(str(folder)).load("m", "fixed", tuple(COLUMNS)).profile is None
        (folder / PROFILE_FILE).write_text('{"features": [1], "prediction": [1, 2], "rows": 1}')
        assert FixedModel(str(folder)).load("m", "fixed", tuple(COLUMNS)).profile is None, "any flaw: no drift"
    (event, _) = _events(caplog, "drift_not_measured")
    assert event["reason"].startswith(f"{PROFILE_FILE} not used: ") and event["model"] == str(folder)
    assert not _events(caplog, "model_not_compiled"), "the model itself serves as it would"
    linear = Path(_saved(fitted(SimpleImputer(), LinearRegression()), tmp_path / "linear"))
    (linear / PROFILE_FILE).write_text(profile.to_json())
    wrapped_only = FixedModel(str(linear)).load("linear", "fixed", tuple(COLUMNS))
    assert wrapped_only.form == "mlflow pyfunc" and wrapped_only.profile == profile, "served by MLflow: profiled too"


# ---- what a load gives, and what it refuses


def test_a_loaded_model_names_what_it_loaded_and_leaves_no_download_behind(tmp_path, monkeypatch) -> None:
    model = boosted(n_estimators=5)
    folder = tmp_path / "m"
    _saved(model, folder)
    verified_form(model).save(folder / COMPILED_FILE)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    from mlflow.models import Model

    read, real_load = [], Model.load
    monkeypatch.setattr(Model, "load", lambda path: read.append(Path(path)) or real_load(path))
    loaded = load_model(str(folder), "m", "7", tuple(COLUMNS))
    (copy,) = read
    assert copy.parent.parent == scratch and copy.parent.name.startswith("model-"), "read from a download of it"
    assert (loaded.name, loaded.version, loaded.uri, loaded.run_id) == ("m", "7", str(folder), None)
    assert loaded.signature is not None and [c["name"] for c in json.loads(loaded.signature["inputs"])] == COLUMNS
    assert loaded.form == "compiled" and loaded.predictor is None and loaded.feature_names == tuple(COLUMNS)
    assert list(scratch.iterdir()) == [], "the download is deleted once the model is in memory"


def test_a_version_that_cannot_be_loaded_is_an_error_naming_it_and_where(tmp_path) -> None:
    with pytest.raises(ModelLoadError) as failed:
        load_model(str(tmp_path / "absent"), "m", "1", tuple(COLUMNS), where=" from http://mlflow")
    assert str(failed.value).startswith(f"cannot load {tmp_path / 'absent'} from http://mlflow: ")
    assert "\n" not in str(failed.value), "the first line of the cause only"
    assert str(failed.value).startswith(f"cannot load {tmp_path / 'absent'} from http://mlflow: MlflowException: The ")
    with pytest.raises(ModelLoadError) as fixed:
        FixedModel(str(tmp_path / "absent")).load("m", "fixed", tuple(COLUMNS))
    assert str(fixed.value).startswith(f"cannot load {tmp_path / 'absent'}: MlflowException: "), "no registry to name"


def test_a_failure_to_compile_at_load_is_logged_by_its_type_and_first_line(tmp_path, monkeypatch, caplog) -> None:
    def broken(model):
        raise RuntimeError("boom\nmore")

    monkeypatch.setattr(model_module, "compile_gradient_boosting", broken)
    with caplog.at_level(logging.INFO, logger="model_service"):
        loaded = FixedModel(_saved(boosted(n_estimators=5), tmp_path / "m")).load("m", "fixed", tuple(COLUMNS))
    assert loaded.form == "mlflow pyfunc"
    (event,) = _events(caplog, "model_not_compiled")
    assert (event["reason"], event["model"]) == ("RuntimeError: boom", str(tmp_path / "m"))


def test_a_model_of_other_inputs_is_refused_and_one_without_a_signature_takes_the_contracts(tmp_path) -> None:
    folder = _saved(boosted(n_estimators=5), tmp_path / "m")
    with pytest.raises(ModelLoadError) as refused:
        load_model(folder, "m", "1", ("a", "b", "z"))
    assert str(refused.value) == (
        f"{folder} expects inputs ['a', 'b', 'c'], but the contract's features are ['a', 'b', 'z']: train it on "
        "the curated table of this contract"
    )
    assert load_model(folder, "m", "1", ("c", "b", "a")).form == "compiled", "the same set in another order"
    unsigned = fitted(SimpleImputer(), LinearRegression())
    mlflow.sklearn.save_model(
        unsigned, tmp_path / "u", skops_trusted_types=SKOPS_TRUSTED_TYPES, pip_requirements=["scikit-learn"]
    )
    loaded = load_model(str(tmp_path / "u"), "u", "1", ("a", "b", "c"))
    assert loaded.signature is None and loaded.feature_names == ("a", "b", "c")


def test_a_loaded_model_predicts_through_its_compiled_form_or_its_predictor() -> None:
    class Predictor:
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            self.frame = frame
            return np.array([1, 2], dtype=np.int64)

    predictor = Predictor()
    through_mlflow = LoadedModel(predictor, "m", "1", None, "u", None, ("x", "y"))
    assert through_mlflow.form == "mlflow pyfunc"
    answers = through_mlflow.predict(np.array([[1.0, np.nan], [3.0, 4.0]]))
    assert answers == [1.0, 2.0] and all(type(a) is float for a in answers)
    assert list(predictor.frame.columns) == ["x", "y"] and np.isnan(predictor.frame.iloc[0, 1])
    compiled = replace(through_mlflow, compiled=lambda matrix: matrix.sum(axis=1))
    assert compiled.form == "compiled" and compiled.predict(np.array([[1.0, 2.0]])) == [3.0]


def test_only_a_scikit_learn_model_of_the_signatures_columns_is_compiled_at_load() -> None:
    model = boosted(n_estimators=5)
    other = SimpleNamespace(metadata=SimpleNamespace(flavors={"python_function": {}, "xgboost": {}}))
    with pytest.raises(NotCompiled, match=r"^flavours \['python_function', 'xgboost'\]: only sklearn models"):
        _compiled_here(other, tuple(COLUMNS))
    sklearn = SimpleNamespace(
        metadata=SimpleNamespace(flavors={"sklearn": {}}),
        get_raw_model=lambda: model,
        predict=lambda frame: model.predict(frame),
    )
    with pytest.raises(NotCompiled) as refused:
        _compiled_here(sklearn, ("a", "b", "z"))
    assert str(refused.value) == "the model was fitted on ['a', 'b', 'c'], its signature takes ['a', 'b', 'z']"
    assert _compiled_here(sklearn, ("c", "a", "b")).columns == tuple(COLUMNS)


def test_the_first_line_of_an_error_is_what_a_message_quotes() -> None:
    assert _first_line(RuntimeError("  first\nsecond  ")) == "first"
    assert _first_line(RuntimeError("")) == "RuntimeError('')"
    assert _first_line(RuntimeError("x" * 600)) == "x" * 500
    assert _first_line(RuntimeError("abc"), limit=2) == "ab"


# ---- the registry's answers


class Client:
    """MlflowClient's get_model_version_by_alias: a version, or the error it raises."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    def get_model_version_by_alias(self, name: str, alias: str) -> SimpleNamespace:
        self.asked.append((name, alias))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return SimpleNamespace(version=self.answer)


def registry(answer: object) -> Registry:
    """A Registry whose client answers `answer` (made without __init__, which sets MLflow's process-wide URIs)."""
    found = Registry.__new__(Registry)
    found.tracking_uri, found._client = "sqlite:///:memory:", Client(answer)  # type: ignore[assignment]
    return found


def test_the_registry_names_the_version_an_alias_points_to() -> None:
    found = registry(3)
    assert found.version_of("m", "champion") == "3" and found._client.asked == [("m", "champion")]  # type: ignore[attr-defined]
    assert found.tracking_uri == "sqlite:///:memory:"


def test_no_version_with_the_alias_yet_is_not_a_failure_to_reach_the_registry() -> None:
    missing = MlflowException("Registered model alias champion not found.\ndetails", error_code=RESOURCE_DOES_NOT_EXIST)
    with pytest.raises(NoModelYet) as none_yet:
        registry(missing).version_of("m", "champion")
    assert str(none_yet.value) == (
        "no version of 'm' has the alias 'champion' yet in sqlite:///:memory: (train and register one: "
        "python -m training.train): Registered model alias champion not found."
    )
    denied = MlflowException("Permission denied", error_code=PERMISSION_DENIED)
    with pytest.raises(ModelLoadError) as failed:
        registry(denied).version_of("m", "champion")
    assert not isinstance(failed.value, NoModelYet)
    assert str(failed.value) == (
        "the tracking server sqlite:///:memory: did not say which version of 'm' has the alias 'champion': "
        "Permission denied"
    )
    with pytest.raises(ModelLoadError) as unreachable:
        registry(ConnectionError("refused\nmore")).version_of("m", "champion")
    assert not isinstance(unreachable.value, NoModelYet)
    assert str(unreachable.value) == (
        "cannot reach the tracking server sqlite:///:memory: to resolve m@champion: ConnectionError: refused"
    )


def test_a_registry_uses_its_uri_for_tracking_and_the_registry_or_says_why_it_cannot(monkeypatch) -> None:
    made, uris = [], []
    monkeypatch.setattr(mlflow, "set_tracking_uri", lambda uri: uris.append(("tracking", uri)))
    monkeypatch.setattr(mlflow, "set_registry_uri", lambda uri: uris.append(("registry", uri)))
    monkeypatch.setattr("mlflow.tracking.MlflowClient", lambda **kwargs: made.append(kwargs) or "client")
    assert Registry("http://mlflow:5000")._client == "client"
    assert uris == [("tracking", "http://mlflow:5000"), ("registry", "http://mlflow:5000")]
    assert made == [{"tracking_uri": "http://mlflow:5000", "registry_uri": "http://mlflow:5000"}]
    default = Registry(None)
    assert default.tracking_uri == "the default tracking URI" and len(uris) == 2, "the default is left as it is"

    def refuse(**kwargs):
        raise ValueError("no store for arn:aws:sagemaker:x (is the sagemaker-mlflow plugin installed?)\nmore")

    monkeypatch.setattr("mlflow.tracking.MlflowClient", refuse)
    with pytest.raises(ModelLoadError) as refused:
        Registry("arn:aws:sagemaker:x")
    assert str(refused.value) == (
        "cannot use the tracking URI arn:aws:sagemaker:x: no store for arn:aws:sagemaker:x (is the sagemaker-mlflow "
        "plugin installed?)\nmore"
    )
    with pytest.raises(ModelLoadError, match=r"^cannot use the tracking URI the default tracking URI: no store"):
        Registry(None)


def test_the_registry_loads_the_version_it_named_and_a_fixed_model_its_uri(tmp_path, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(model_module, "load_model", lambda *args, **kwargs: calls.append((args, kwargs)) or "x")
    assert registry(1).load("m", "4", ("a",)) == "x"
    assert calls[-1] == (("models:/m/4", "m", "4", ("a",)), {"where": " from sqlite:///:memory:"})
    fixed = FixedModel("s3://bucket/model")
    assert (fixed.tracking_uri, fixed.version_of("m", "champion"), FIXED_VERSION) == (None, "fixed", "fixed")
    assert fixed.load("m", "fixed", ("a",)) == "x" and calls[-1] == (("s3://bucket/model", "m", "fixed", ("a",)), {})
