"""The service through its HTTP API (TestClient): health, readiness, model, predictions, bad requests."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from model_service.api import create_app
from model_service.model import LoadedModel
from model_service.settings import Settings, SettingsError, settings_from_env
from model_service.tracker import ModelTracker
from tests.model_service.trackers import tracker_serving


@pytest.fixture(scope="module")
def client(served) -> TestClient:
    settings = Settings(tracking_uri=served.tracking_uri, max_batch_size=100)
    return TestClient(create_app(settings, tracker_serving(served.model), served.contract))


def test_health_and_ready(client, served) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {
        "status": "ready",
        "model_name": "diabetes-progression",
        "model_version": served.model.version,
    }


def test_model_info(client, served) -> None:
    info = client.get("/v1/model").json()
    assert info["name"] == "diabetes-progression" and info["version"] == served.model.version == "1"
    assert info["run_id"] and info["uri"] == "models:/diabetes-progression/1" and info["alias"] == "champion"
    assert "inputs" in info["signature"]


def test_before_a_model_exists_it_is_live_not_ready_and_says_why(served, sample_records) -> None:
    reason = "no version of 'diabetes-progression' has the alias 'champion' yet in http://mlflow:5000"
    settings = Settings(tracking_uri="http://mlflow:5000")
    client = TestClient(create_app(settings, tracker_serving(None, reason), served.contract))
    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not ready",
        "reason": reason,
        "model": "models:/diabetes-progression@champion",
        "tracking_uri": "http://mlflow:5000",
    }
    for response in (client.post("/v1/predict", json={"records": sample_records[:2]}), client.get("/v1/model")):
        assert response.status_code == 503 and response.json() == {"detail": reason}
    assert client.post("/v1/predict", json={"records": []}).status_code == 422, "a bad request is still a 422"


def test_a_request_finishes_on_the_model_it_started_with_when_the_alias_moves(served, sample_records) -> None:
    """The champion moves while a batch is being scored: the whole answer comes from the old version, and
    the next request gets the new one."""
    alias = {"version": "1"}
    tracker: ModelTracker

    class Predictor:
        def __init__(self, value: float, swap_midway: bool) -> None:
            self.value, self.swap_midway = value, swap_midway

        def predict(self, frame):
            if self.swap_midway:
                alias["version"] = "2"
                tracker.check()  # the background check, landing in the middle of this request
            return [self.value] * len(frame)

    def load(version: str) -> LoadedModel:
        predictor = Predictor(float(version), swap_midway=version == "1")
        return LoadedModel(
            predictor, "diabetes-progression", version, None, f"models:/m/{version}", None, served.contract.features
        )

    tracker = ModelTracker(
        model_uri="models:/diabetes-progression@champion", resolve=lambda: alias["version"], load=load, interval=3600
    )
    tracker.check()
    client = TestClient(create_app(Settings(), tracker, served.contract))
    first = client.post("/v1/predict", json={"records": sample_records[:3]}).json()
    assert (first["model_version"], first["predictions"]) == ("1", [1.0, 1.0, 1.0])
    second = client.post("/v1/predict", json={"records": sample_records[:1]}).json()
    assert (second["model_version"], second["predictions"]) == ("2", [2.0])
    assert client.get("/v1/model").json()["version"] == "2"


def test_predict_a_batch(client, sample_records) -> None:
    response = client.post("/v1/predict", json={"records": sample_records})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "1" and len(body["predictions"]) == 100
    assert all(20 < p < 360 for p in body["predictions"]), "disease progression stays in a sane range"
    one = client.post("/v1/predict", json={"records": sample_records[:1]}).json()["predictions"]
    assert one == pytest.approx(body["predictions"][:1])


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"bmi": 500}, "records[1].bmi", "less than or equal to 80"),
        ({"sex": 3}, "records[1].sex", "Input should be 1 or 2"),
        ({"age": "forty"}, "records[1].age", "valid integer"),
        ({"cholesterol": 1}, "records[1].cholesterol", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_record_is_a_422_naming_the_record_and_field(client, sample_records, change, field, message) -> None:
    records = [dict(r) for r in sample_records[:3]]
    records[1] |= change
    response = client.post("/v1/predict", json={"records": records})
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["field"] == field and message in detail["message"]


def test_a_missing_required_field_and_an_empty_batch_are_422(client, sample_records) -> None:
    record = dict(sample_records[0])
    del record["bmi"]
    assert client.post("/v1/predict", json={"records": [record]}).json()["detail"][0]["field"] == "records[0].bmi"
    assert client.post("/v1/predict", json={"records": []}).status_code == 422
    assert (
        client.post("/v1/predict", content=b"not json", headers={"content-type": "application/json"}).status_code == 422
    )


def test_nullable_lab_values_may_be_missing(client, sample_records) -> None:
    record = dict(sample_records[0], s1=None)
    assert client.post("/v1/predict", json={"records": [record]}).status_code == 200


def test_a_batch_over_the_limit_is_413(client, sample_records) -> None:
    response = client.post("/v1/predict", json={"records": sample_records + sample_records[:1]})
    assert response.status_code == 413 and "at most 100 per request" in response.json()["detail"]


def test_openapi_carries_the_contract(client) -> None:
    spec = client.get("/openapi.json").json()
    features = spec["components"]["schemas"]["PatientFeatures"]["properties"]
    assert features["bmi"]["maximum"] == 80 and features["bmi"]["minimum"] == 10
    assert {"minimum": 1, "maximum": 15, "type": "number"} in features["s4"]["anyOf"], "nullable, and still bounded"
    assert set(spec["paths"]) == {"/health", "/ready", "/v1/model", "/v1/predict"}
    assert spec["paths"]["/ready"]["get"]["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NotReady"
    }
    assert client.get("/docs").status_code == 200


def test_settings_come_from_the_environment_with_clear_errors() -> None:
    settings = settings_from_env(
        {
            "MODEL_SERVICE_MODEL_NAME": "m",
            "MODEL_SERVICE_MODEL_ALIAS": "challenger",
            "MODEL_SERVICE_REFRESH_SECONDS": "15",
            "MLFLOW_TRACKING_URI": "x",
            "MODEL_SERVICE_MAX_BATCH_SIZE": "7",
        }
    )
    assert (settings.source, settings.refresh_seconds) == ("models:/m@challenger", 15)
    assert settings.max_batch_size == 7 and settings.tracking_uri == "x"
    defaults = settings_from_env({})
    assert (defaults.source, defaults.refresh_seconds) == ("models:/diabetes-progression@champion", 60)
    assert defaults.model_uri is None
    fixed = settings_from_env({"MODEL_SERVICE_MODEL_URI": "s3://team-models/diabetes/model"})
    assert fixed.source == "s3://team-models/diabetes/model", "a fixed model, not the alias"
    with pytest.raises(SettingsError, match="MODEL_SERVICE_MAX_BATCH_SIZE"):
        settings_from_env({"MODEL_SERVICE_MAX_BATCH_SIZE": "0"})
    with pytest.raises(SettingsError, match="MODEL_SERVICE_REFRESH_SECONDS: Input should be greater than or equal"):
        settings_from_env({"MODEL_SERVICE_REFRESH_SECONDS": "0"})
    with pytest.raises(SettingsError, match="MODEL_SERVICE_MODEL_ALIAS: String should match"):
        settings_from_env({"MODEL_SERVICE_MODEL_ALIAS": "3"})
    with pytest.raises(SettingsError, match="MODEL_SERVICE_MODEL_URI: String should have at least 1 character"):
        settings_from_env({"MODEL_SERVICE_MODEL_URI": ""})
    with pytest.raises(SettingsError, match="MODEL_SERVICE_MODEL_URL: Extra inputs are not permitted"):
        settings_from_env({"MODEL_SERVICE_MODEL_URL": "models:/m@champion"})


def test_a_full_window_of_served_records_logs_its_drift_and_never_a_value(served, sample_records, caplog) -> None:
    """The service's drift report (the drift alarm's metric filters read it): the training profile stored with the
    version, the records served, their distances; the sample is the training data, so it has barely moved, and a
    window of shifted records has."""
    import json
    import logging

    from model_service.events import PREDICTION_DRIFT

    assert served.model.profile is not None, "training stored the profile beside the model"
    settings = Settings(tracking_uri=served.tracking_uri, max_batch_size=100, drift_window=150)
    client = TestClient(create_app(settings, tracker_serving(served.model), served.contract))

    def reports() -> list[dict]:
        lines = [json.loads(r.getMessage()) for r in caplog.records if PREDICTION_DRIFT in r.getMessage()]
        return [line for line in lines if line["event"] == PREDICTION_DRIFT]

    with caplog.at_level(logging.INFO, logger="model_service"):
        client.post("/v1/predict", json={"records": sample_records})
        assert reports() == [], "100 records of a 150-record window: nothing yet"
        client.post("/v1/predict", json={"records": sample_records})
        (near,) = reports()
        heavy = [{**r, "bmi": 45.0} for r in sample_records]
        client.post("/v1/predict", json={"records": heavy[:50]})
        client.post("/v1/predict", json={"records": heavy})
        far = reports()[-1]
    assert near["records"] == 200 and near["version"] == served.model.version
    assert near["feature_drift"] < 0.5 and near["prediction_drift"] < 0.5, near
    assert far["feature"] == "bmi" and far["feature_drift"] > 3, far
    assert far["prediction_drift"] > near["prediction_drift"]
    assert set(far) == {"event", "model", "version", "records", "feature", "feature_drift", "prediction_drift"}, (
        "aggregates only: no record's values"
    )
