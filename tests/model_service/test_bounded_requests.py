"""Bounded requests: the body's size is checked before it is parsed, the batch has a maximum length, a
422 names fields without echoing values, and a number field takes what the pipeline takes."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from model_service.api import MAX_REPORTED_ERRORS, create_app
from model_service.schemas import record_model
from model_service.settings import Settings
from tests.model_service.trackers import tracker_serving

LIMIT = 64 << 10
DISTINCTIVE = "Zq9-patient-secret"


@pytest.fixture(scope="module")
def client(served) -> TestClient:
    settings = Settings(tracking_uri=served.tracking_uri, max_batch_size=100, max_body_bytes=LIMIT)
    return TestClient(create_app(settings, tracker_serving(served.model), served.contract))


def record_json(record: dict, raw: dict[str, str]) -> str:
    """One record as JSON, some of whose values are raw JSON text (NaN, 1e400: not what json.dumps writes)."""
    fields = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in record.items() if k not in raw]
    fields += [f"{json.dumps(k)}: {v}" for k, v in raw.items()]
    return "{" + ", ".join(fields) + "}"


def body_with(record: dict, raw: dict[str, str]) -> bytes:
    """A request of that one record."""
    return ('{"records": [' + record_json(record, raw) + "]}").encode()


def post(client: TestClient, body: bytes):
    return client.post("/v1/predict", content=body, headers={"content-type": "application/json"})


def test_a_body_over_the_limit_is_413_naming_it_before_it_is_parsed(client, sample_records) -> None:
    body = json.dumps({"records": sample_records[:1], "padding": "x" * LIMIT}).encode()
    response = post(client, body)
    assert response.status_code == 413 and f"over {LIMIT} bytes" in response.json()["detail"]
    assert "MODEL_SERVICE_MAX_BODY_BYTES" in response.json()["detail"]
    chunks = iter([body[:1000], body[1000:]])  # no content-length: counted as it is read
    response = client.post("/v1/predict", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_a_chunked_body_under_the_limit_is_served(client, sample_records) -> None:
    body = json.dumps({"records": sample_records[:3]}).encode()
    response = client.post(
        "/v1/predict", content=iter([body[:10], body[10:]]), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200 and len(response.json()["predictions"]) == 3


def test_one_record_over_the_batch_limit_is_413_and_the_openapi_says_the_maximum(client, sample_records) -> None:
    response = client.post("/v1/predict", json={"records": [sample_records[0]] * 101})
    assert response.status_code == 413 and "at most 100 per request" in response.json()["detail"]
    assert client.post("/v1/predict", json={"records": [sample_records[0]] * 100}).status_code == 200
    spec = client.get("/openapi.json").json()
    assert spec["components"]["schemas"]["PredictRequest"]["properties"]["records"]["maxItems"] == 100


def test_a_422_reports_a_bounded_number_of_problems_and_never_the_values(client, sample_records) -> None:
    records = [dict(r, bmi=f"{DISTINCTIVE}-{i}") for i, r in enumerate(sample_records)]
    response = client.post("/v1/predict", json={"records": records})
    assert response.status_code == 422
    reply = response.json()
    assert reply["errors"] == 100 and reply["reported"] == len(reply["detail"]) == MAX_REPORTED_ERRORS
    assert reply["detail"][0]["field"] == "records[0].bmi"
    assert DISTINCTIVE not in response.text


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"bmi": "NaN"}, "records[0].bmi"),
        ({"bmi": "Infinity"}, "records[0].bmi"),
        ({"bmi": "-Infinity"}, "records[0].bmi"),
        ({"bmi": "1e400"}, "records[0].bmi"),
        ({"bmi": '"\\ud800"'}, "records[0].bmi"),
        ({"\ud800": "1"}, "records[0]"),
        ({"k" * 5000: "1"}, "records[0]." + "k" * 64 + "..."),
    ],
)
def test_values_json_cannot_echo_are_422_not_500(client, sample_records, raw, field) -> None:
    record = {k: v for k, v in sample_records[0].items() if k not in raw}
    response = post(client, body_with(record, raw))
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["detail"]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"age": True}, "valid integer: a JSON number, not bool"),
        ({"sex": True}, "valid integer: a JSON number, not bool"),
        ({"bmi": "25.0"}, "valid number: a JSON number, not str"),
        ({"age": 40.5}, "valid integer"),
    ],
)
def test_number_fields_take_json_numbers_only(client, sample_records, change, message) -> None:
    response = client.post("/v1/predict", json={"records": [dict(sample_records[0], **change)]})
    assert response.status_code == 422 and message in response.json()["detail"][0]["message"]


NUMBERS = [
    "40",
    "40.0",
    "-0",
    "1e1",
    "1E1",
    "40.5",
    "-1",
    "121",
    "120.0000001",
    "2",
    "2.0",
    "3",
    "9.5",
    "80",
    "80.01",
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "9223372036854775807",
    "9223372036854775808",
    "1.5e2",
    "1" + "0" * 400,
]  # a JSON integer no float holds


@pytest.mark.parametrize("column", ["age", "sex", "bmi", "s1"])
def test_the_service_and_the_pipeline_accept_the_same_numbers(served, sample_records, column) -> None:
    """Each JSON number's text is what a CSV would hold: both engines must give the same verdict."""
    model = record_model(served.contract)
    contract_column = served.contract.column(column)
    for text in NUMBERS:
        record = {k: v for k, v in sample_records[0].items() if k != column}
        service_accepts = True
        try:
            model.model_validate(json.loads(record_json(record, {column: text})))  # as FastAPI parses a body
        except ValueError:
            service_accepts = False
        _, reason = contract_column.check(text)
        assert service_accepts == (reason is None), (column, text, reason)
