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
        errors = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}).get("Errors")
        if errors:
            raise RuntimeError(f"could not delete s3://{bucket}/{errors[0].get('Key')}: {errors[0].get('Message')}")
    return len(keys)


def read_text_or_none(s3: S3Client, bucket: str, key: str) -> str | None:
    """An object's text; None where there is no such key (any other error is raised)."""
    found = _text_and_etag(s3, bucket, key)
    return None if found is None else found[0]


def _text_and_etag(s3: S3Client, bucket: str, key: str) -> tuple[str, str] | None:
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None
    return obj["Body"].read().decode("utf-8"), obj["ETag"]


class ConditionalTexts:
    """Small objects of one bucket read, then written only if unchanged since (S3's conditional PUT: If-Match
    the ETag read, If-None-Match where none was there): a curated table's pointer, which two promotions of a
    table at once would otherwise both switch (pipeline/builds.py)."""

    def __init__(self, s3: S3Client, bucket: str) -> None:
        self.s3, self.bucket = s3, bucket
        self._etags: dict[str, str] = {}

    def read(self, key: str) -> str | None:
        found = _text_and_etag(self.s3, self.bucket, key)
        if found is None:
            self._etags.pop(key, None)
            return None
        text, self._etags[key] = found
        return text

    def swap(self, key: str, text: str, expected: str | None) -> None:
        """Write `text` if the key still holds what `read` returned (`expected`; None: absent then), else
        BuildConflict. `expected` must be what this object's last `read` of the key returned."""
        from botocore.exceptions import ClientError, ParamValidationError

        from pipeline.builds import BuildConflict

        if (expected is None) != (key not in self._etags):
            raise ValueError(f"swap of {key} without reading it first: read it, then swap from what was read")
        body, kind = text.encode(), "application/json"
        try:
            if expected is None:
                put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=kind, IfNoneMatch="*")
            else:
                put = self.s3.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ContentType=kind, IfMatch=self._etags[key]
                )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise BuildConflict(f"s3://{self.bucket}/{key} changed since it was read") from error
            raise
        except ParamValidationError as error:  # a botocore older than S3's conditional writes (2024)
            if "IfMatch" not in str(error) and "IfNoneMatch" not in str(error):
                raise  # a bad request of any other kind is no reason to write without the condition
            now = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key).get("Contents", [])
            found = next((o["ETag"] for o in now if o["Key"] == key), None)
            if found != self._etags.get(key):
                raise BuildConflict(f"s3://{self.bucket}/{key} changed since it was read") from None
            put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=kind)
        self._etags[key] = put["ETag"]
