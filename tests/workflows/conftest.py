"""Fixtures shared by the workflow tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws


@pytest.fixture
def aws(monkeypatch) -> Iterator[dict[str, Any]]:
    """One moto account (eu-west-1) for the test, and its clients by service; the default credential
    chain (boto3.client, the CLIs' main()) reaches the same account."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield {name: boto3.client(name, region_name="eu-west-1") for name in ("cloudformation", "s3", "ecr", "logs")}
