"""dispatch: raw-file events from the queue -> one execution per object, at most so many at once, a repeated
event a no-op, the rest back to the queue (moto's Step Functions and SQS: it runs no execution, which
therefore stay RUNNING, as a long Glue run would)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest

from lambdas.dispatch import handler as dispatch
from lambdas.dispatch.logic import (
    NAME_LIMIT,
    MalformedEvent,
    RawFileEvent,
    execution_name,
    raw_file_event,
    retry_seconds,
    start_now,
    waited_seconds,
)
from pipeline.ledger import Step
from tests.lambdas.harness import BUCKETS, REGION, dispatch_targets, queued

EVENTS = Path(__file__).resolve().parents[1] / "events" / "s3"
SFN_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
"""What Step Functions accepts in an execution name, narrowed to the characters that need no thought."""


def event_body(key: str, version: str) -> str:
    body = json.loads((EVENTS / "object_created_raw.json").read_text())
    body["detail"]["object"]["key"], body["detail"]["object"]["version-id"] = key, version
    return json.dumps(body)


KEY = "diabetes/patients/created_at=20261122T103005Z/visits.csv"


def test_a_real_event_names_its_object_and_version() -> None:
    body = (EVENTS / "object_created_raw.json").read_text()
    detail = json.loads(body)["detail"]
    event = raw_file_event(body)
    assert event == RawFileEvent(detail["bucket"]["name"], detail["object"]["key"], detail["object"]["version-id"])


@pytest.mark.parametrize("body", ["not json", "{}", '{"detail": {"bucket": {"name": "b"}, "object": {}}}', "[]"])
def test_a_message_that_is_not_an_object_created_event_is_refused_with_what_it_lacks(body: str) -> None:
    with pytest.raises(MalformedEvent, match=r"detail\.object\.key|names no object"):
        raw_file_event(body)


def test_the_name_is_the_same_for_a_repeated_event_and_another_for_any_other_object() -> None:
    first = raw_file_event(event_body(KEY, "v1"))
    assert execution_name(first) == execution_name(raw_file_event(event_body(KEY, "v1")))
    others = {
        execution_name(RawFileEvent(first.bucket, KEY, "v2")),  # the same key, another object
        execution_name(RawFileEvent(first.bucket, KEY.replace("visits", "visits2"), "v1")),
        execution_name(RawFileEvent("other-bucket", KEY, "v1")),
        execution_name(RawFileEvent(first.bucket, KEY, None)),
    }
    assert len(others) == 4 and execution_name(first) not in others


@pytest.mark.parametrize(
    "file", ["visits.csv", "my export (1).csv", "Übersicht März.csv", "x" * 300 + ".csv", "%%%.csv", "---"]
)
def test_every_name_is_one_step_functions_accepts(file: str) -> None:
    name = execution_name(RawFileEvent("raw", f"diabetes/patients/created_at=20261122T103005Z/{file}", "v"))
    assert SFN_NAME.fullmatch(name) and len(name) <= NAME_LIMIT, name


def test_another_execution_starts_only_below_the_limit() -> None:
    assert start_now(0, 1) and start_now(2, 3)
    assert not start_now(3, 3) and not start_now(4, 3)


@pytest.fixture
def aws(s3):
    """moto's Step Functions and SQS beside the S3 of the `s3` fixture: (sfn, sqs, machine arn, queue url)."""
    targets = dispatch_targets()
    return (
        boto3.client("stepfunctions", region_name=REGION),
        boto3.client("sqs", region_name=REGION),
        targets["STATE_MACHINE_ARN"],
        targets["QUEUE_URL"],
    )


def executions(sfn, machine: str) -> list[dict]:
    return sfn.list_executions(stateMachineArn=machine)["executions"]


def test_a_burst_starts_up_to_the_limit_and_the_rest_wait_in_the_queue(aws, monkeypatch) -> None:
    sfn, sqs, machine, queue_url = aws
    delays = []
    real_change = sqs.change_message_visibility
    monkeypatch.setattr(
        sqs,
        "change_message_visibility",
        lambda **kw: (delays.append(kw["VisibilityTimeout"]), real_change(**kw))[1],
    )
    records = queued(queue_url, [event_body(KEY, f"v{i}") for i in range(5)])
    result = dispatch.dispatch(sfn, sqs, queue_url, machine, 3, records)
    assert len(result["started"]) == 3 and len(executions(sfn, machine)) == 3
    waiting = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    assert waiting == {r["messageId"] for r in records[3:]}, "the rest go back to the queue, reported per message"
    assert len(delays) == 2 and all(60 <= d < 120 for d in delays), "received once: a minute, and jitter"
    assert 0 <= result["oldest_wait_seconds"] < 60

    again = dispatch.dispatch(sfn, sqs, queue_url, machine, 3, records[3:])
    assert again["started"] == [] and len(again["batchItemFailures"]) == 2, "still three running: they wait"


def test_a_repeated_event_starts_nothing_and_is_not_a_failure(aws) -> None:
    sfn, sqs, machine, queue_url = aws
    body = event_body(KEY, "v1")
    first = dispatch.dispatch(sfn, sqs, queue_url, machine, 3, queued(queue_url, [body]))
    second = dispatch.dispatch(sfn, sqs, queue_url, machine, 3, queued(queue_url, [body, body]))
    assert len(first["started"]) == 1 and second["started"] == []
    assert second["duplicates"] == first["started"] * 2 and second["batchItemFailures"] == []
    recorded = {(e.file_id, e.step, e.fields["execution"]) for e in [*first["ledger"], *second["ledger"]]}
    assert len(recorded) == 1, "a repeated event records the same dispatch again (in case the first was lost)"
    (execution,) = executions(sfn, machine)
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == json.loads(body), "the state machine gets the event as EventBridge sent it"


def test_a_new_version_under_the_same_key_is_a_new_execution(aws) -> None:
    sfn, sqs, machine, queue_url = aws
    records = queued(queue_url, [event_body(KEY, "v1"), event_body(KEY, "v2")])
    assert len(dispatch.dispatch(sfn, sqs, queue_url, machine, 3, records)["started"]) == 2


def test_a_malformed_message_is_reported_not_swallowed(aws) -> None:
    sfn, sqs, machine, queue_url = aws
    records = queued(queue_url, ["{}", event_body(KEY, "v1")])
    result = dispatch.dispatch(sfn, sqs, queue_url, machine, 3, records)
    bad = next(r["messageId"] for r in records if r["body"] == "{}")
    assert result["batchItemFailures"] == [{"itemIdentifier": bad}] and len(result["started"]) == 1


def test_buckets_of_the_harness_are_the_fixtures(s3) -> None:
    assert set(BUCKETS.values()) <= {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_the_ledger_records_a_started_execution_under_the_decoded_raw_key(aws) -> None:
    sfn, sqs, machine, queue_url = aws
    encoded = KEY.replace("=", "%3D")  # as S3 events may carry it (tests/events/s3/README.md)
    result = dispatch.dispatch(sfn, sqs, queue_url, machine, 3, queued(queue_url, [event_body(encoded, "v1")]))
    ((entry),) = result["ledger"]
    assert (entry.file_id, entry.step, dict(entry.fields)) == (
        KEY,
        Step.DISPATCHED,
        {"execution": result["started"][0]},
    )


def test_a_waiting_message_waits_longer_each_time_up_to_a_cap_with_jitter() -> None:
    assert [retry_seconds(n, 0.0) for n in (0, 1, 2, 5, 14, 15, 1000)] == [60, 60, 120, 300, 840, 840, 840]
    assert retry_seconds(1, 0.999) == 119 and retry_seconds(1000, 0.999) == 899, "seen at least every 15 min"


def test_the_wait_is_measured_from_when_sqs_got_the_message() -> None:
    assert waited_seconds(1_000, 61_000) == 60.0
    assert waited_seconds(5_000, 1_000) == 0.0, "a clock behind SQS's measures no negative wait"


# ---- names and events, exact ---------------------------------------------------------------------------------


def _event_body(detail: dict) -> str:
    return json.dumps({"detail": detail})


def test_an_event_reads_its_version_else_its_etag_and_a_backfills_replay() -> None:
    from lambdas.dispatch.logic import RawFileEvent, raw_file_event

    obj = {"key": "d/t/created_at=20261101T000000Z/a.csv"}
    bucket = {"name": "raw-bucket"}
    assert raw_file_event(_event_body({"bucket": bucket, "object": {**obj, "version-id": "v1", "etag": "e"}})) == (
        RawFileEvent("raw-bucket", obj["key"], "v1", None)
    )
    assert raw_file_event(_event_body({"bucket": bucket, "object": {**obj, "etag": "e1"}})).version == "e1"
    assert raw_file_event(_event_body({"bucket": bucket, "object": obj})).version is None
    replayed = raw_file_event(_event_body({"bucket": bucket, "object": {**obj, "version-id": 7}, "replay": "bf-1"}))
    assert replayed == RawFileEvent("raw-bucket", obj["key"], "7", "bf-1")


@pytest.mark.parametrize(
    ("detail", "message"),
    [
        ({"bucket": {"name": "b"}, "object": {"key": ""}}, "the event names no object: bucket 'b', key ''"),
        ({"bucket": {"name": 5}, "object": {"key": "k"}}, "the event names no object: bucket 5, key 'k'"),
        ({"bucket": {"name": "b"}, "object": {"key": 5}}, "the event names no object: bucket 'b', key 5"),
    ],
)
def test_an_event_without_an_object_says_what_it_named(detail: dict, message: str) -> None:
    from lambdas.dispatch.logic import MalformedEvent, raw_file_event

    with pytest.raises(MalformedEvent) as raised:
        raw_file_event(_event_body(detail))
    assert str(raised.value) == message


def test_a_refused_body_is_quoted_up_to_200_characters() -> None:
    from lambdas.dispatch.logic import MalformedEvent, raw_file_event

    body = "x" * 300
    with pytest.raises(MalformedEvent) as raised:
        raw_file_event(body)
    assert str(raised.value) == f"not an S3 Object Created event (detail.bucket.name, detail.object.key): {'x' * 200!r}"


def test_an_execution_name_is_the_files_readable_name_and_a_hash_of_everything_that_tells_it_apart() -> None:
    import hashlib

    from lambdas.dispatch.logic import NAME_LIMIT, RawFileEvent, execution_name

    key = "d/t/created_at=20261101T000000Z/my file (1).csv"
    digest = hashlib.sha256(f"raw\n{key}\nv1".encode()).hexdigest()[:40]
    assert execution_name(RawFileEvent("raw", key, "v1")) == f"my-file-1-csv-{digest}"
    replay = hashlib.sha256(f"raw\n{key}\nv1\nbf-1".encode()).hexdigest()[:40]
    assert execution_name(RawFileEvent("raw", key, "v1", "bf-1")) == f"my-file-1-csv-{replay}"
    unversioned = hashlib.sha256(f"raw\n{key}\n".encode()).hexdigest()[:40]
    assert execution_name(RawFileEvent("raw", key, None)).endswith(f"-{unversioned}")
    long = execution_name(RawFileEvent("raw", "d/t/" + "a" * 100, "v"))
    assert len(long) == NAME_LIMIT and long.startswith("a" * (NAME_LIMIT - 41) + "-")
    assert execution_name(RawFileEvent("raw", "d/t/(((", "v")) == hashlib.sha256(b"raw\nd/t/(((\nv").hexdigest()[:40]
