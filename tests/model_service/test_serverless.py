"""The serverless entry point (model_service/serverless.py) against the server's: the same requests give the
same answers, through a function-URL event and Mangum as through HTTP; and, with no thread between requests,
the alias is followed on request."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from model_service.api import create_app
from model_service.assembly import assemble
from model_service.model import LoadedModel, NoModelYet
from model_service.serverless import StartupError, build
from model_service.settings import Settings
from model_service.tracker import ModelTracker
from scripts.lambda_runtime import function_url_event
from training.train import MODEL_NAME

LIMITS = {"MODEL_SERVICE_MAX_BATCH_SIZE": "100", "MODEL_SERVICE_MAX_BODY_BYTES": "65536"}


class FakeContext:
    function_name = "dataplat-we-1-service"
    aws_request_id = "r-1"


def requests(records: list[dict]) -> list[tuple[str, str, str | None]]:
    """(method, path, body): every kind of answer the API gives, good and bad."""
    bad = [dict(records[0], bmi=500)]
    missing = [{k: v for k, v in records[0].items() if k != "age"}]
    return [
        ("GET", "/health", None),
        ("GET", "/ready", None),
        ("GET", "/v1/model", None),
        ("POST", "/v1/predict", json.dumps({"records": records[:1]})),
        ("POST", "/v1/predict", json.dumps({"records": records[:100]})),
        ("POST", "/v1/predict", json.dumps({"records": bad})),
        ("POST", "/v1/predict", json.dumps({"records": missing})),
        ("POST", "/v1/predict", json.dumps({"records": []})),
        ("POST", "/v1/predict", json.dumps({"records": records[:1] * 101})),  # over the batch limit: 413
        ("POST", "/v1/predict", json.dumps({"records": records[:1] * 2000})),  # over the body limit: 413
        ("POST", "/v1/predict", "not json"),
        ("GET", "/v1/predict", None),
        ("GET", "/nowhere", None),
        ("GET", "/openapi.json", None),
    ]


def as_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@pytest.fixture(scope="module")
def both(served) -> Iterator[tuple[TestClient, Any]]:
    """The server as `python -m model_service` builds it (its thread following the alias), and the Lambda
    handler as model_service/lambda_entry.py builds it, from one environment."""
    environ = {"MLFLOW_TRACKING_URI": served.tracking_uri, "MODEL_SERVICE_MODEL_NAME": MODEL_NAME, **LIMITS}
    service = assemble(environ)
    with TestClient(create_app(service.settings, service.tracker, service.contract)) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").json()
            time.sleep(0.1)
        yield client, build(environ)


def test_the_same_requests_get_the_same_answers_through_both_entry_points(both, sample_records) -> None:
    client, handler = both
    for method, path, body in requests(sample_records):
        served = client.request(method, path, content=body, headers={"content-type": "application/json"})
        answered = handler(function_url_event(method, path, body), FakeContext())
        where = f"{method} {path} ({len(body or '')} bytes)"
        assert answered["statusCode"] == served.status_code, (where, answered["statusCode"], answered["body"][:300])
        assert as_json(answered["body"]) == as_json(served.text), where
        assert answered["headers"]["content-type"] == served.headers["content-type"], where
    statuses = {
        (m, p, len(b or "")): handler(function_url_event(m, p, b), FakeContext())["statusCode"]
        for m, p, b in requests(sample_records)
    }
    assert sorted(set(statuses.values())) == [200, 404, 405, 413, 422], "every kind of answer was compared"


def test_without_a_thread_a_request_follows_the_alias_once_the_interval_has_passed(served, sample_records) -> None:
    """On Lambda nothing runs between requests: before any model, the first request checks and says why none is
    served; once the interval has passed, a request finds the model the alias now names."""
    clock = [1000.0]
    champion: list[LoadedModel | None] = [None]
    checks = []

    def resolve() -> str:
        checks.append(clock[0])
        if champion[0] is None:
            raise NoModelYet("no version of the model has the alias champion yet")
        return champion[0].version

    settings = Settings(tracking_uri=served.tracking_uri, refresh_seconds=60)
    tracker = ModelTracker(
        model_uri=settings.source, resolve=resolve, load=lambda _: served.model, interval=60, clock=lambda: clock[0]
    )
    from mangum import Mangum

    handler = Mangum(create_app(settings, tracker, served.contract, following="request"), lifespan="off")
    body = json.dumps({"records": sample_records[:1]})

    def predict() -> dict:
        return handler(function_url_event("POST", "/v1/predict", body), FakeContext())

    first = predict()
    assert first["statusCode"] == 503 and "champion" in json.loads(first["body"])["detail"]
    assert checks == [1000.0], "the first request checked"
    champion[0] = served.model
    clock[0] += 59
    assert predict()["statusCode"] == 503 and checks == [1000.0], "within the interval: no check, no model yet"
    assert handler(function_url_event("GET", "/health", None), FakeContext())["statusCode"] == 200
    clock[0] += 1
    answered = predict()
    assert answered["statusCode"] == 200 and checks == [1000.0, 1060.0], "the interval passed: checked, served"
    assert json.loads(answered["body"])["model_version"] == served.model.version


def test_settings_that_cannot_work_fail_the_environments_start_with_the_reason() -> None:
    with pytest.raises(StartupError, match=r"model service not started: .*MODEL_SERVICE_REFRESH_SECONDS"):
        build({"MODEL_SERVICE_REFRESH_SECONDS": "0", "MLFLOW_TRACKING_URI": "sqlite:///nowhere.db"})
    with pytest.raises(StartupError, match="MODEL_SERVICE_CONTRACT_VERSION is 99"):
        build({"MODEL_SERVICE_CONTRACT_VERSION": "99", "MLFLOW_TRACKING_URI": "sqlite:///nowhere.db"})
