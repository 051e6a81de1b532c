"""An event's key, URL-encoded or not, names the object ingest wrote: through resolve_raw_key and through the
validate handler, from events in the shape S3 sends to EventBridge (tests/events/s3/)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from botocore.exceptions import ClientError

from lambdas.ingest import handler as ingest
from lambdas.keys import RawKeyNotFound, resolve_raw_key
from lambdas.validate import handler as validate
from pipeline.contract import load_contracts
from tests.lambdas.conftest import BUCKETS, FakeContext, keys, recorder
from tests.lambdas.test_ingest import AWKWARD_NAMES

EVENTS = Path(__file__).resolve().parents[1] / "events" / "s3"
SAMPLE = json.loads((EVENTS / "object_created_encoded.json").read_text())
HEADER = ",".join(load_contracts()["diabetes/patients"].column_names).encode() + b"\n"
ENCODINGS = {
    "raw": lambda key: key,
    "form-encoded": lambda key: quote_plus(key, safe=""),  # `/` as %2F too
    "form-encoded, / kept": lambda key: quote_plus(key, safe="/"),
}


def object_created(bucket: str, key: str) -> dict[str, Any]:
    """The sample "Object Created" event for `key` as the event carries it."""
    event = copy.deepcopy(SAMPLE)
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return event


def state_input(event: dict[str, Any]) -> dict[str, Any]:
    """What the state machine's Input state gives the validate step (tests/infra/test_etl.py pins its paths)."""
    return {"bucket": event["detail"]["bucket"]["name"], "key": event["detail"]["object"]["key"]}


def ingested(s3: Any, name: str, body: bytes = HEADER) -> str:
    """Land `name` for diabetes/patients and run ingest: the raw key it wrote."""
    s3.put_object(Bucket=BUCKETS["landing"], Key=f"diabetes/patients/{name}", Body=body)
    moved = ingest.run(
        s3, BUCKETS["landing"], BUCKETS["raw"], BUCKETS["quarantine"], {"diabetes/patients"}, record=recorder()
    )["moved"]
    (raw_key,) = moved
    return str(raw_key)


@pytest.fixture
def quarantine_env(monkeypatch) -> None:
    monkeypatch.setenv("QUARANTINE_BUCKET", BUCKETS["quarantine"])


def test_the_sample_events_have_the_shape_aws_documents_and_one_key() -> None:
    encoded, raw = (json.loads((EVENTS / f"object_created_{kind}.json").read_text()) for kind in ("encoded", "raw"))
    for event in (encoded, raw):
        assert set(event) == {
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
            "detail",
        }
        assert (event["detail-type"], event["source"]) == ("Object Created", "aws.s3")
        assert set(event["detail"]) == {
            "version",
            "bucket",
            "object",
            "request-id",
            "requester",
            "source-ip-address",
            "reason",
        }
        assert set(event["detail"]["object"]) == {"key", "size", "etag", "version-id", "sequencer"}
    assert "%3D" in encoded["detail"]["object"]["key"] and "=" in raw["detail"]["object"]["key"]
    assert quote_plus(raw["detail"]["object"]["key"], safe="/") == encoded["detail"]["object"]["key"]


@pytest.mark.parametrize("kind", ["encoded", "raw"])
def test_each_sample_event_resolves_to_its_object(s3, kind: str) -> None:
    stored = json.loads((EVENTS / "object_created_raw.json").read_text())["detail"]["object"]["key"]
    s3.put_object(Bucket=BUCKETS["raw"], Key=stored, Body=HEADER)
    event = json.loads((EVENTS / f"object_created_{kind}.json").read_text())
    assert resolve_raw_key(s3, BUCKETS["raw"], event["detail"]["object"]["key"]) == stored


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_an_ingested_file_is_found_from_its_event_however_the_key_is_encoded(
    s3, quarantine_env, name: str, encoding: str
) -> None:
    raw_key = ingested(s3, name)
    event = object_created(BUCKETS["raw"], ENCODINGS[encoding](raw_key))
    assert resolve_raw_key(s3, BUCKETS["raw"], event["detail"]["object"]["key"]) == raw_key
    result = validate.handler(state_input(event), FakeContext())
    assert result["valid"] is True, result
    assert result["key"] == raw_key, "the steps after validate get the object's own key ($.validation.key)"
    assert result["landing_key"] == f"diabetes/patients/{name}"


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("name", ["a b.csv", "a+b.csv", "100%.csv", "100%25.csv", "a%2Bb.csv", "Übersicht März.csv"])
def test_raw_objects_written_before_safe_names_are_found_too(s3, name: str, encoding: str) -> None:
    """Raw files whose names an encoding changes (ingested before safe names): the event's key, decoded (`+`
    is a space) or as it came (a `+` carried raw), names the object."""
    stored = f"diabetes/patients/created_at=20261122T103005Z/{name}"
    s3.put_object(Bucket=BUCKETS["raw"], Key=stored, Body=HEADER)
    assert resolve_raw_key(s3, BUCKETS["raw"], ENCODINGS[encoding](stored)) == stored


def test_when_both_readings_exist_the_decoded_one_wins(s3) -> None:
    prefix = "diabetes/patients/created_at=20261122T103005Z/"
    for name in ("a b.csv", "a+b.csv"):
        s3.put_object(Bucket=BUCKETS["raw"], Key=prefix + name, Body=HEADER)
    assert resolve_raw_key(s3, BUCKETS["raw"], prefix + "a+b.csv") == prefix + "a b.csv"


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # it fails before any metric
def test_a_missing_object_is_an_error_naming_the_event_key_and_every_key_tried(s3, quarantine_env) -> None:
    event_key = "diabetes/patients/created_at%3D20261122T103005Z/gone.csv"
    expected = (
        f"no object in s3://{BUCKETS['raw']} for the event's key '{event_key}'; "
        "tried 'diabetes/patients/created_at=20261122T103005Z/gone.csv', "
        f"'{event_key}'"
    )
    with pytest.raises(RawKeyNotFound) as raised:
        resolve_raw_key(s3, BUCKETS["raw"], event_key)
    assert str(raised.value) == expected
    with pytest.raises(RawKeyNotFound, match=re.escape(expected)):  # the execution fails: its catch notifies the topic
        validate.handler(state_input(object_created(BUCKETS["raw"], event_key)), FakeContext())
    assert keys(s3, BUCKETS["quarantine"]) == [], "nothing to quarantine"


def test_other_errors_than_a_missing_key_are_not_hidden(s3) -> None:
    with pytest.raises(ClientError, match=r"NoSuchBucket|Not Found|404"):
        resolve_raw_key(s3, "no-such-bucket", "a%3Db.csv")


@pytest.mark.parametrize("encoding", ["form-encoded", "form-encoded, / kept"])
def test_an_unreadable_file_from_an_encoded_event_is_quarantined_under_its_own_key(
    s3, quarantine_env, encoding: str
) -> None:
    raw_key = ingested(s3, "empty export (1).csv", body=b"")
    result = validate.handler(state_input(object_created(BUCKETS["raw"], ENCODINGS[encoding](raw_key))), FakeContext())
    assert result["valid"] is False and "landing_key" not in result
    assert result["source"] == f"s3://{BUCKETS['raw']}/{raw_key}"
    assert keys(s3, BUCKETS["quarantine"]) == [f"files/{raw_key}", f"files/{raw_key}.reason.json"]


def test_an_object_ingest_did_not_write_has_no_landing_key(s3, quarantine_env) -> None:
    key = "diabetes/patients/created_at=20261122T103005Z/visits.csv"
    s3.put_object(Bucket=BUCKETS["raw"], Key=key, Body=HEADER)
    result = validate.handler(state_input(object_created(BUCKETS["raw"], quote_plus(key, safe="/"))), FakeContext())
    assert result["valid"] is True and result["key"] == key and result["landing_key"] is None
