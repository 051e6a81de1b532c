"""Putting a whole file into quarantine with its reason beside it (shared by ingest and validate)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the stubs are a development dependency: the Lambda runtime has none
    from mypy_boto3_s3 import S3Client


def quarantine_file(s3: S3Client, bucket: str, key: str, quarantine: str, target: str, reason: str) -> str:
    """Copy s3://bucket/key to s3://quarantine/target and write target + '.reason.json'; returns the URI."""
    s3.copy({"Bucket": bucket, "Key": key}, quarantine, target)
    s3.put_object(
        Bucket=quarantine,
        Key=f"{target}.reason.json",
        ContentType="application/json",
        Body=json.dumps({"source": f"s3://{bucket}/{key}", "reason": reason}),
    )
    return f"s3://{quarantine}/{target}"
