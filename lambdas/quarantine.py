"""Putting a whole file into quarantine with its reason beside it (shared by ingest and validate)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the stubs are a development dependency: the Lambda runtime has none
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef


def quarantine_file(
    s3: S3Client, bucket: str, key: str, quarantine: str, target: str, reason: str, *, version: str | None = None
) -> str:
    """Copy s3://bucket/key (its `version` where given) to s3://quarantine/target and write target +
    '.reason.json'; returns the URI."""
    source: CopySourceTypeDef = {"Bucket": bucket, "Key": key}
    if version:
        source["VersionId"] = version
    s3.copy(source, quarantine, target)
    s3.put_object(
        Bucket=quarantine,
        Key=f"{target}.reason.json",
        ContentType="application/json",
        Body=json.dumps(
            {"source": f"s3://{bucket}/{key}", "reason": reason} | ({"version": version} if version else {})
        ),
    )
    return f"s3://{quarantine}/{target}"
