"""The service through its HTTP API (TestClient): health, readiness, model, predictions, bad requests."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from model_service.api import create_app
from model_service.settings import Settings, SettingsError, settings_from_env


@pytest.fixture(scope="module")
def client(served) -> TestClient:
    settings = Settings(model_uri=served.model.uri, tracking_uri=served.tracking_uri, max_batch_size=100)
    return TestClient(create_app(settings, served.model, served.contract))


def test_health_and_ready(client, served) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready", "model_version": served.model.version}


def test_model_info(client, served) -> None:
    info = client.get("/v1/model").json()
    assert info["name"] == "diabetes-progression" and info["version"] == served.model.version == "1"
    assert info["run_id"] and info["uri"] == "models:/diabetes-progression@champion"
    assert "inputs" in info["signature"]


def test_predict_a_batch(client, sample_records) -> None:
    response = client.post("/v1/predict", json={"records": sample_records})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "1" and len(body["predictions"]) == 100
    assert all(20 < p < 360 for p in body["predictions"]), "disease progression stays in a sane range"
    one = client.post("/v1/predict", json={"records": sample_records[:1]}).json()["predictions"]
    assert one == pytest.approx(body["predictions"][:1])


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"bmi": 500}, "records[1].bmi", "less than or equal to 80"),
    ({"sex": 3}, "records[1].sex", "Input should be 1 or 2"),
    ({"age": "forty"}, "records[1].age", "valid integer"),
    ({"cholesterol": 1}, "records[1].cholesterol", "Extra inputs are not permitted"),
])
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
    assert client.post("/v1/predict", content=b"not json", headers={"content-type": "application/json"}
                       ).status_code == 422


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
    assert set(spec["paths"]) == {"/health", "/ready", "/v1/model", "/v1/predict"}
    assert client.get("/docs").status_code == 200


def test_settings_come_from_the_environment_with_clear_errors() -> None:
    settings = settings_from_env({"MODEL_SERVICE_MODEL_URI": "models:/m@champion", "MLFLOW_TRACKING_URI": "x",
                                  "MODEL_SERVICE_MAX_BATCH_SIZE": "7"})
    assert settings.max_batch_size == 7 and settings.tracking_uri == "x"
    with pytest.raises(SettingsError, match="MODEL_SERVICE_MODEL_URI: Field required"):
        settings_from_env({})
    with pytest.raises(SettingsError, match="MODEL_SERVICE_MAX_BATCH_SIZE"):
        settings_from_env({"MODEL_SERVICE_MODEL_URI": "m", "MODEL_SERVICE_MAX_BATCH_SIZE": "0"})
