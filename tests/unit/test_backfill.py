"""The backfill: every raw file of a table queued again as dispatch reads a raw-file event, under a name of
its own (so that the files run once more though their executions ran), and a build from scratch started only
while none of the table's builds runs (moto's S3, SQS and Glue)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from infra.backfill import BackfillError, RawObject, rebuild, replay_event, restage
from lambdas.dispatch.logic import execution_name, raw_file_event

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="raw", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket="raw", VersioningConfiguration={"Status": "Enabled"})
        yield s3, boto3.client("sqs", region_name=REGION), boto3.client("glue", region_name=REGION)


def test_every_raw_file_of_the_table_is_queued_again_under_a_name_of_its_own(aws) -> None:
    s3, sqs, _ = aws
    keys = [f"diabetes/patients/created_at=20261201T0000{i:02d}Z/f{i}.csv" for i in range(12)]
    originals = {}
    for key in keys:
        etag = s3.put_object(Bucket="raw", Key=key, Body=key.encode())["ETag"].strip('"')
        originals[key] = execution_name(raw_file_event(replay_event("raw", RawObject(key, etag), "")))
    s3.put_object(Bucket="raw", Key="other/table/created_at=20261201T000000Z/o.csv", Body=b"x")
    queue = sqs.create_queue(QueueName="raw-files")["QueueUrl"]

    assert restage(s3, sqs, "raw", queue, "diabetes/patients", "backfill-20261203T000000Z") == 12
    bodies = []
    while len(bodies) < 12:
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        assert received, f"{len(bodies)} of 12 queued"
        bodies += [m["Body"] for m in received]
    events = [raw_file_event(body) for body in bodies]
    assert sorted(e.key for e in events) == sorted(keys) and {e.bucket for e in events} == {"raw"}
    assert {e.replay for e in events} == {"backfill-20261203T000000Z"}
    for event in events:
        name = execution_name(event)
        assert name != originals[event.key], "the file runs again: its first execution's name is taken"
        assert event.version == s3.head_object(Bucket="raw", Key=event.key)["ETag"].strip('"')
        assert name == execution_name(
            raw_file_event(replay_event("raw", RawObject(event.key, event.version), event.replay))
        )
    again = raw_file_event(replay_event("raw", RawObject(keys[0], "e"), "backfill-20261204T000000Z"))
    assert execution_name(again) not in {execution_name(e) for e in events}, "a later backfill runs it again"


def test_a_rebuild_starts_a_build_from_scratch_unless_one_of_the_table_runs(aws, monkeypatch) -> None:
    _, _, glue = aws
    glue.create_job(Name="promotion", Role="arn:aws:iam::123456789012:role/g", Command={"Name": "glueetl"})
    run = rebuild(glue, "promotion", "diabetes/patients")
    (started,) = glue.get_job_runs(JobName="promotion")["JobRuns"]
    assert started["Id"] == run and started["Arguments"] == {"--table": "diabetes/patients", "--from_scratch": "true"}

    def active(**_: object) -> dict:
        return {"JobRuns": [{"JobRunState": "RUNNING", "Arguments": {"--table": "diabetes/patients"}}]}

    monkeypatch.setattr(glue, "get_job_runs", active)
    with pytest.raises(BackfillError, match="a build of diabetes/patients is running"):
        rebuild(glue, "promotion", "diabetes/patients")
    assert rebuild(glue, "promotion", "other/table")

    def active_in_shared(JobName: str, **_: object) -> dict:
        return active() if JobName == "shared" else {"JobRuns": []}

    monkeypatch.setattr(glue, "get_job_runs", active_in_shared)  # a table that has just got a job of its own
    with pytest.raises(BackfillError, match=r"a build of diabetes/patients is running \(shared\)"):
        rebuild(glue, "promotion", "diabetes/patients", ("shared",))


def test_a_check_only_table_or_an_unknown_one_is_refused_before_anything_is_called(capsys) -> None:
    from infra.backfill import main

    assert main(["--branch", "main", "--table", "platform_check/smoke"]) == 2
    assert "is a check-only dataset" in capsys.readouterr().err
    assert main(["--branch", "main", "--table", "nope/nothing"]) == 2
    assert "no data contract for nope/nothing" in capsys.readouterr().err


def test_a_stage_without_etl_is_refused_before_anything_is_called(monkeypatch, capsys) -> None:
    import infra.config
    from infra.backfill import main
    from tests.infra.conftest import with_components

    shipped = infra.config.load_config(infra.config.DEFAULT_CONFIG_PATH)
    monkeypatch.setattr(infra.config, "load_config", lambda path: with_components(shipped, etl=False))
    monkeypatch.setattr("boto3.client", lambda *a, **k: pytest.fail("no AWS call for a stage without ETL"))
    assert main(["--branch", "feature/x", "--table", "diabetes/patients"]) == 2
    assert "stage feature has no ETL (config components.etl: false)" in capsys.readouterr().err


def test_a_backfill_rebuilds_a_table_in_its_own_promotion_job_if_it_has_one() -> None:
    from infra.backfill import promotion_job
    from infra.stack_outputs import PROMOTION_JOB_OUTPUT, TABLE_PROMOTION_JOBS_OUTPUT

    outputs = {PROMOTION_JOB_OUTPUT: "dp-w-staging-to-curated"}
    assert promotion_job(outputs, "clinic/appointments") == "dp-w-staging-to-curated"
    outputs[TABLE_PROMOTION_JOBS_OUTPUT] = '{"clinic/appointments": "dp-w-staging-to-curated-clinic.appointments"}'
    assert promotion_job(outputs, "clinic/appointments") == "dp-w-staging-to-curated-clinic.appointments"
    assert promotion_job(outputs, "diabetes/patients") == "dp-w-staging-to-curated"
