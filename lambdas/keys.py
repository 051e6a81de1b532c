"""Which object an event names. S3 and EventBridge may URL-encode the key they carry (AWS documents S3
notification keys as URL-encoded: `a b.csv` arrives as `a+b.csv`, `=` as `%3D`); the steps after validate
use the key resolved here, never the event's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from pipeline.layout import event_key_candidates, landing_key_from_metadata

if TYPE_CHECKING:  # the stubs are a development dependency: the Lambda runtime has none
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef

_MISSING = ("404", "NoSuchKey", "NotFound")


class RawKeyNotFound(LookupError):
    """No object under any reading of an event's key."""


def head_or_none(s3: S3Client, bucket: str, key: str, *, version: str | None = None) -> HeadObjectOutputTypeDef | None:
    """The object's HEAD (of `version` where given), or None if there is no such key or version. S3 answers
    404 for a missing key only to a caller that may list the bucket (403 otherwise): every bucket policy of the
    storage stack grants s3:ListBucket with its object actions."""
    try:
        head = (
            s3.head_object(Bucket=bucket, Key=key, VersionId=version)
            if version
            else s3.head_object(Bucket=bucket, Key=key)
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] in _MISSING:
            return None
        raise
    return head


def resolve_raw_key(s3: S3Client, bucket: str, event_key: str) -> str:
    """The key of the object in `bucket` that an event's `detail.object.key` names: the first of
    `event_key_candidates` (decoded, then as it came) that exists. Raises RawKeyNotFound naming the event's
    key and every key tried."""
    tried = event_key_candidates(event_key)
    for key in tried:
        if head_or_none(s3, bucket, key) is not None:
            return key
    raise RawKeyNotFound(
        f"no object in s3://{bucket} for the event's key {event_key!r}; tried {', '.join(repr(k) for k in tried)}"
    )


def landing_key_of(s3: S3Client, bucket: str, key: str) -> str | None:
    """The landing key ingest kept in the object's metadata; None for an object without one."""
    return landing_key_from_metadata(s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}))
