"""Lambdas against moto's in-process S3: the same boto3 calls as in AWS."""

from __future__ import annotations

import os

import boto3
import pytest
from moto import mock_aws

BUCKETS = {"landing": "test-landing", "raw": "test-raw", "quarantine": "test-quarantine",
           "staging": "test-staging"}


@pytest.fixture
def s3(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "eu-west-1", "POWERTOOLS_METRICS_NAMESPACE": "Test"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        for bucket in BUCKETS.values():
            client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield client


def keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


class FakeContext:
    function_name = "test"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:test"
    aws_request_id = "req-1"


os.environ.setdefault("POWERTOOLS_DEV", "false")
