"""The handlers run as Lambda runs them, against moto: every code path that emits a metric, and the
metrics it emitted, read from its stdout as CloudWatch reads them (EMF).

Two uses: in-process in the handlers' tests (tests/lambdas/test_metrics.py), and in a fresh interpreter
started with a synthesised function's own environment (`handler_runs`, tests/infra/test_observability.py),
as a Lambda cold start would: Powertools takes its settings from the environment at import. There the AWS
calls each handler makes are recorded too, for the check that its role allows them
(tests/infra/test_lambda_role_calls.py): moto allows every call.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
BUCKETS = {
    "landing": "test-landing",
    "raw": "test-raw",
    "quarantine": "test-quarantine",
    "staging": "test-staging",
    "curated": "test-curated",
}
FUNCTIONS = tuple(sorted(path.parent.name for path in (ROOT / "lambdas").glob("*/handler.py")))
"""Every handler of lambdas/: a new one without a path in `exercise` fails the metrics tests."""
AWS_TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
KEY = "diabetes/patients/created_at=20261122T103005Z/visits.csv"
LEDGER = "test-ledger"


class FakeContext:
    function_name = "test"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:test"
    aws_request_id = "req-1"

    def __init__(self, remaining_ms: int = 900_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def create_buckets(s3: Any) -> None:
    """The buckets, versioned as every data bucket of the storage stack is, and the run ledger (LEDGER)."""
    import boto3

    from pipeline.ledger import create_table

    for bucket in BUCKETS.values():
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    create_table(boto3.client("dynamodb", region_name=REGION), LEDGER)


@dataclass(frozen=True)
class EmittedMetric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    """(name, value) pairs, sorted: CloudWatch identifies a metric by the set, not the order."""


def parse_emf(output: str) -> list[EmittedMetric]:
    """Every metric of every EMF record printed in `output`, one per dimension set (what CloudWatch creates)."""
    emitted = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "_aws" not in record:
            continue
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = tuple(sorted((name, record[name]) for name in dimension_set))
                emitted += [
                    EmittedMetric(directive["Namespace"], metric["Name"], dimensions) for metric in directive["Metrics"]
                ]
    return emitted


def exercise(
    function: str,
    s3: Any,
    around: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
    returned: list[Any] | None = None,
) -> None:
    """Invoke `function`'s handler once on each path that emits a metric (S3: moto, with BUCKETS created),
    each invocation inside `around()`. The handler module is imported here, so that a fresh interpreter imports
    it with its environment."""
    import importlib

    from pipeline.builds import Build, build_fingerprint, manifest
    from pipeline.contract import load_contracts
    from pipeline.layout import (
        GATE_PASSED,
        PROFILE_FILE,
        current_build_key,
        parse_raw_key,
        run_prefix,
    )
    from tests.pipeline.test_gate import GOOD

    invoke = importlib.import_module(f"lambdas.{function}.handler").handler

    def handler(event: dict[str, Any], context: FakeContext) -> Any:
        with around():
            result = invoke(event, context)
        if returned is not None:
            returned.append(result)
        return result

    environment = {
        "LANDING_BUCKET": BUCKETS["landing"],
        "RAW_BUCKET": BUCKETS["raw"],
        "QUARANTINE_BUCKET": BUCKETS["quarantine"],
        "STAGING_BUCKET": BUCKETS["staging"],
        "CURATED_BUCKET": BUCKETS["curated"],
        "LEDGER_TABLE": LEDGER,
        "CATALOG_DATABASE": CATALOG_DATABASE,
    }
    with mock.patch.dict(os.environ, environment):
        if function == "ingest":  # files to move (one copied in parts), one to quarantine: both metrics
            s3.put_object(Bucket=BUCKETS["landing"], Key="diabetes/patients/visits.csv", Body=b"x")
            s3.put_object(Bucket=BUCKETS["landing"], Key="diabetes/patients/big.csv", Body=b"x" * (9 << 20))
            s3.put_object(Bucket=BUCKETS["landing"], Key="stray.csv", Body=b"x")
            handler({}, FakeContext())
        elif function == "validate":  # a readable file, then an empty one
            header = ",".join(load_contracts()["diabetes/patients"].column_names).encode() + b"\n"
            for key, body in ((KEY, header), (KEY.replace("visits", "empty"), b"")):
                s3.put_object(Bucket=BUCKETS["raw"], Key=key, Body=body)
                handler({"bucket": BUCKETS["raw"], "key": key}, FakeContext())
        elif function == "gate":  # a profile that passes, then one that breaks a rule
            for profile in (GOOD, dict(GOOD, rows_written=90)):
                s3.put_object(
                    Bucket=BUCKETS["staging"],
                    Key=run_prefix(parse_raw_key(KEY), "jr_harness") + PROFILE_FILE,
                    Body=json.dumps(profile),
                )
                handler({"key": KEY}, FakeContext())
        elif function == "dispatch":  # an event starts its execution; again, it is a duplicate; a burst waits
            targets = dispatch_targets()

            def batch(*versions: str) -> dict[str, Any]:
                return {"Records": queued(targets["QUEUE_URL"], [_raw_file_event(v) for v in versions])}

            with mock.patch.dict(os.environ, targets):
                limit = int(targets["MAX_RUNNING_FILES"])
                for event in (batch("v0"), batch("v0"), batch(*[f"v{i}" for i in range(1, limit + 2)])):
                    handler(event, FakeContext())
        elif function == "promote":  # a table with a passed batch waiting: a build starts; then nothing waits
            job = promotion_job()
            run = run_prefix(parse_raw_key(KEY), "jr_harness")
            for name in (PROFILE_FILE, GATE_PASSED):
                s3.put_object(Bucket=BUCKETS["staging"], Key=run + name, Body=b"{}")
            with mock.patch.dict(os.environ, {"PROMOTION_JOB": job}):
                handler({}, FakeContext())
                contract = load_contracts()["diabetes/patients"]
                current = Build(
                    "diabetes", "patients", 1, 10, "t", "build=000001-a", contract=build_fingerprint(contract)
                )
                s3.put_object(
                    Bucket=BUCKETS["curated"], Key=current_build_key("diabetes", "patients"), Body=current.to_json()
                )
                held = manifest([f"{parse_raw_key(KEY).batch}/run=jr_harness"], current)  # build 1 holds the run
                s3.put_object(Bucket=BUCKETS["curated"], Key=current.manifest_key, Body=held.encode())
                handler({}, FakeContext())
        elif function == "extract":
            exercise_extract(handler)
        else:
            raise KeyError(f"no metric path of lambdas/{function} in tests/lambdas/harness.py: add one")


SOURCE_TABLE = "clinic/appointments"


def exercise_extract(handler: Callable[[dict[str, Any], FakeContext], Any]) -> None:
    """A first run reads the table whole; after more changes, a run with under a minute left stops after its
    first page (pages of 10 rows). Against a real PostgreSQL (scripts/local_postgres.py), its connection in a
    secret as RDS writes one; the source file is the function's (its environment) where it has one."""
    from datetime import UTC, datetime

    import boto3

    from lambdas.extract.logic import SECRET_ENV, SOURCE_ENV, TABLE_ENV
    from pipeline.contract import load_contracts
    from pipeline.sample_data import appointment_rows
    from pipeline.sources import source_files
    from scripts.local_postgres import load_appointments, local_postgres

    data, _ = source_files(load_contracts())[SOURCE_TABLE]
    described = json.loads(os.environ.get(SOURCE_ENV, json.dumps(data)))
    with local_postgres() as server:
        load_appointments(server.target(), appointment_rows(30), datetime(2026, 12, 1, tzinfo=UTC))
        secret = server.rds_secret("require")
        arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="test-source", SecretString=json.dumps(secret)
        )["ARN"]
        with mock.patch.dict(os.environ, {SECRET_ENV: arn, TABLE_ENV: SOURCE_TABLE, SOURCE_ENV: json.dumps(described)}):
            handler({}, FakeContext())
        load_appointments(server.target(), appointment_rows(30), datetime(2026, 12, 2, tzinfo=UTC))
        paged = json.dumps(described | {"chunk_rows": 10})
        with mock.patch.dict(os.environ, {SECRET_ENV: arn, TABLE_ENV: SOURCE_TABLE, SOURCE_ENV: paged}):
            handler({}, FakeContext(remaining_ms=30_000))


def _raw_file_event(version: str) -> str:
    """The body EventBridge queues for a new raw object (tests/events/s3 holds real ones)."""
    return json.dumps({"detail": {"bucket": {"name": BUCKETS["raw"]}, "object": {"key": KEY, "version-id": version}}})


def queued(queue_url: str, bodies: list[str]) -> list[dict[str, Any]]:
    """`bodies` sent to the queue and received, as records of the event Lambda's SQS poller passes."""
    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    messages: list[dict[str, Any]] = []
    while len(messages) < len(bodies):
        messages += sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    return [as_record(m) for m in messages]


def as_record(message: dict[str, Any]) -> dict[str, Any]:
    """A received SQS message as a record of the event Lambda's SQS poller passes (with its attributes)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message["Attributes"],
    }


def dispatch_targets() -> dict[str, str]:
    """A state machine and a queue in moto, as dispatch's environment names them (MAX_RUNNING_FILES comes
    from the function's synthesised environment where there is one)."""
    import boto3

    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name="pipeline",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/pipeline",
    )["stateMachineArn"]
    queue = boto3.client("sqs", region_name=REGION).create_queue(QueueName="raw-files")["QueueUrl"]
    return {
        "STATE_MACHINE_ARN": machine,
        "QUEUE_URL": queue,
        "MAX_RUNNING_FILES": os.environ.get("MAX_RUNNING_FILES", "3"),
    }


CATALOG_DATABASE = "catalog"
"""The workspace's Glue database in moto (promote's CATALOG_DATABASE), with a table per promotable contract."""


def promotion_job() -> str:
    """The promotion's Glue job in moto, as promote's environment names it (PROMOTION_JOB), created; and the
    catalog whose tables promote keeps current, as the ETL stack defines them."""
    import boto3

    from pipeline.catalog import catalogued, table_input
    from pipeline.contract import load_contracts

    glue = boto3.client("glue", region_name=REGION)
    glue.create_database(DatabaseInput={"Name": CATALOG_DATABASE})
    for contract in catalogued(load_contracts()).values():
        glue.create_table(DatabaseName=CATALOG_DATABASE, TableInput=table_input(contract, BUCKETS["curated"]))
    name = os.environ.get("PROMOTION_JOB", "staging-to-curated")
    glue.create_job(
        Name=name,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://x/job.py"},
    )
    return name


API_CALLS = "_api_calls"
RETURNED = "_returned"
"""The key of the line the harness prints last: the AWS calls the handler made."""


@dataclass(frozen=True)
class ApiCall:
    service: str
    """botocore's name of the service: s3, stepfunctions, sqs."""
    operation: str
    bucket: str | None = None
    """S3 only, as are the fields below."""
    versioned: bool = False
    """Whether the call names an object version (an IAM action of its own: s3:GetObjectVersion, ...)."""
    copy_source: tuple[str, bool] | None = None
    """(bucket, versioned) of the object a copy reads."""
    table: str | None = None
    """Glue only: the catalog table a partition call names (AWS authorises it on the catalog, the database and
    the table)."""
    key: str | None = None
    """The object's key (S3), or the item's partition key value (DynamoDB: what dynamodb:LeadingKeys names)."""


@dataclass(frozen=True)
class HandlerRun:
    metrics: list[EmittedMetric]
    api_calls: list[ApiCall]
    returned: list[Any]
    """What each invocation returned, in order (JSON)."""


def handler_runs(environments: Mapping[str, Mapping[str, str]]) -> dict[str, HandlerRun]:
    """For each function (name -> its environment), the metrics its handler emits and the AWS calls it makes
    when run, like a cold start, in a fresh interpreter with that environment and nothing else of this
    process's. In parallel."""
    runs = {
        function: subprocess.Popen(
            [sys.executable, "-m", "tests.lambdas.harness", function],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": os.environ["PATH"], **AWS_TEST_ENVIRONMENT, **environment},
        )
        for function, environment in environments.items()
    }
    results = {}
    for function, run in runs.items():
        out, err = run.communicate(timeout=300)
        if run.returncode != 0:
            raise RuntimeError(f"lambdas/{function} failed:\n{err[-3000:]}")
        last = json.loads(out.strip().splitlines()[-1])
        calls = [
            ApiCall(**{**c, "copy_source": tuple(c["copy_source"]) if c["copy_source"] else None})
            for c in last[API_CALLS]
        ]
        results[function] = HandlerRun(parse_emf(out), calls, last[RETURNED])
    return results


def emitted_metrics(environments: Mapping[str, Mapping[str, str]]) -> dict[str, list[EmittedMetric]]:
    return {function: run.metrics for function, run in handler_runs(environments).items()}


def _recorded(params: Mapping[str, Any], service: str, operation: str) -> ApiCall:
    if service == "glue" and "TableName" in params:
        return ApiCall(service, operation, table=params["TableName"])
    if service == "dynamodb" and "Key" in params:
        (value,) = params["Key"].values()
        return ApiCall(service, operation, key=value["S"])
    if service != "s3":
        return ApiCall(service, operation)
    source = params.get("CopySource")
    if isinstance(source, str):  # "bucket/key?versionId=..."
        copy_source = (source.split("/", 1)[0], "versionId=" in source)
    elif source is not None:
        copy_source = (source["Bucket"], bool(source.get("VersionId")))
    else:
        copy_source = None
    return ApiCall(
        service, operation, params["Bucket"], bool(params.get("VersionId")), copy_source, key=params.get("Key")
    )


@contextlib.contextmanager
def _recording(calls: list[ApiCall]) -> Iterator[None]:
    """Every AWS call of a client created meanwhile from boto3's default session (as the handlers create
    theirs), as the caller asked for it."""
    import boto3

    def record(params: Mapping[str, Any], model: Any, **_: Any) -> None:
        calls.append(_recorded(params, model.service_model.service_name, model.name))

    boto3.setup_default_session(region_name=REGION)
    events = boto3.DEFAULT_SESSION.events
    events.register("provide-client-params", record)
    try:
        yield
    finally:
        events.unregister("provide-client-params", record)


def _main(function: str) -> None:
    import boto3
    from moto import mock_aws

    calls: list[ApiCall] = []
    returned: list[Any] = []
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        create_buckets(s3)
        exercise(function, s3, around=lambda: _recording(calls), returned=returned)
    print(json.dumps({API_CALLS: [vars(call) for call in calls], RETURNED: returned}, default=str))


if __name__ == "__main__":
    _main(sys.argv[1])
