"""Lambdas against moto's in-process S3: the same boto3 calls as in AWS."""

from __future__ import annotations

import json
import os
from unittest import mock

import boto3
import pytest
from moto import mock_aws

from lambdas.telemetry import DEFAULT_DIMENSIONS_ENV
from pipeline.ledger import LEDGER_TABLE_ENV, DynamoLedger
from tests.lambdas.harness import AWS_TEST_ENVIRONMENT, BUCKETS, LEDGER, REGION, FakeContext, create_buckets, keys

__all__ = ["BUCKETS", "FakeContext", "keys"]

POWERTOOLS_ENVIRONMENT = {
    "POWERTOOLS_METRICS_NAMESPACE": "Test",
    "POWERTOOLS_SERVICE_NAME": "test",
    DEFAULT_DIMENSIONS_ENV: json.dumps({"workspace": "test-workspace"}),
}
"""What a function's environment gives Powertools in AWS (infra/constructs/pipeline_function.py), with test
values. Powertools reads it when lambdas.observability is imported, as at a Lambda cold start: imported
here, before any test module imports a handler, and the environment restored after."""

with mock.patch.dict(os.environ, POWERTOOLS_ENVIRONMENT):
    import lambdas.observability  # noqa: F401


@pytest.fixture
def s3(monkeypatch):
    for key, value in AWS_TEST_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv(LEDGER_TABLE_ENV, LEDGER)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        create_buckets(client)
        yield client


def ledger_items() -> list[dict]:
    """The run ledger's records (moto, inside the `s3` fixture)."""
    return DynamoLedger(boto3.client("dynamodb", region_name=REGION), LEDGER).items()


os.environ.setdefault("POWERTOOLS_DEV", "false")


def recorder():
    """What ingest's handler passes `run` to record each file: the ledger's (moto, inside the `s3` fixture)."""
    from pipeline.ledger import record_all

    ledger = DynamoLedger(boto3.client("dynamodb", region_name=REGION), LEDGER)
    return lambda entry: record_all(ledger, [entry])
