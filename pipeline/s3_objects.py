"""What the Glue jobs and the local run do to S3 objects by prefix, written once (the jobs ship `pipeline/`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the stubs are a development dependency: Glue has none
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

_DELETE_BATCH = 1000  # DeleteObjects' limit per request


def keys_under(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def delete_under(s3: S3Client, bucket: str, prefix: str) -> int:
    """Delete every object under `prefix` (current versions: a versioned bucket keeps the rest until its
    lifecycle expires them). Returns how many; a key S3 could not delete is an error naming it."""
    keys = keys_under(s3, bucket, prefix)
    for start in range(0, len(keys), _DELETE_BATCH):
        batch: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys[start : start + _DELETE_BATCH]]
        errors = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}).get("Errors", [])
        if errors:
            raise RuntimeError(f"could not delete s3://{bucket}/{errors[0].get('Key')}: {errors[0].get('Message')}")
    return len(keys)


def read_text_or_none(s3: S3Client, bucket: str, key: str) -> str | None:
    """An object's text; None where there is no such key (any other error is raised)."""
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    except s3.exceptions.NoSuchKey:
        return None
