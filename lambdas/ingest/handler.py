"""Scheduled: move newly landed files from the landing bucket to raw, write-once and retry-safe.

It lists landing's object versions, not its current objects: a name landed twice before a run is two
uploads, both copied, each by its version id, so an upload meanwhile under the same name is never mistaken
for the one listed (`lambdas.ingest.logic.uploads` says which versions a delete marker retracted).

A retry recomputes the same raw key (the landing time is part of it); a target that already exists and
was copied from this very landed object (its ETag and version, kept in the raw object's metadata) is not
copied again, so a retry never duplicates a file. Any other file under that key is a conflict: the landed
file stays where it is and the run fails (alarm). Once copied, the landed file is deleted by the version
that was copied: a version uploaded under the same name meanwhile stays, and the next run takes it.

The raw name is the landing name made safe (pipeline/layout.py); the landing key itself goes with the copy,
in the raw object's user metadata (`landing-key`), beside the source's own metadata and content headers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.ingest.logic import Landed, Move, Unroutable, plan, uploads
from lambdas.keys import head_or_none
from lambdas.observability import instrumented, logger, metrics
from lambdas.quarantine import quarantine_file
from lambdas.telemetry import Metric
from pipeline.contract import load_contracts
from pipeline.layout import LANDING_ETAG_METADATA, landing_metadata, quarantined_file_key
from pipeline.ledger import Entry, Step, landing_file_id, ledger_from_environment, record_all

if TYPE_CHECKING:  # the stubs are a development dependency: the Lambda runtime has none
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef, HeadObjectOutputTypeDef

_contracts = functools.cache(load_contracts)  # read once per container, not per invocation


class IngestConflict(RuntimeError):
    """Raw already holds a different file under the same key."""


def _listed_version(version_id: str | None) -> str | None:
    return None if version_id in (None, "null") else version_id


def _landed(s3: S3Client, bucket: str, limit: int) -> tuple[list[Landed], list[Landed]]:
    """(to ingest, retracted): up to `limit` landed versions to ingest, in listing order, and the retracted ones
    listed on the way (they do not count: however many wait for their expiry, new uploads get through). S3 lists
    a key's versions and delete markers newest first, so a version's newer delete marker is always listed
    before it."""
    kept: list[Landed] = []
    retracted: list[Landed] = []
    deleted_at: dict[str, datetime] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for marker in page.get("DeleteMarkers", []):
            key, at = marker["Key"], marker["LastModified"]
            deleted_at[key] = max(at, deleted_at.get(key, at))
        listed = [
            Landed(
                o["Key"],
                o["LastModified"],
                o["Size"],
                _listed_version(o.get("VersionId")),
                o["ETag"].strip('"'),
                current=o.get("IsLatest", False),
            )
            for o in page.get("Versions", [])
        ]
        page_kept, page_retracted = uploads(listed, deleted_at)
        kept += page_kept
        retracted += page_retracted
        if len(kept) >= limit:
            break
    return kept[:limit], retracted


def _copied_from(raw_head: HeadObjectOutputTypeDef, landed: HeadObjectOutputTypeDef) -> bool:
    """Whether the raw object is the copy of this landed version: by the landed ETag ingest kept in its
    metadata. A raw object ingested before ingest kept it is compared by size, as it was then."""
    kept = raw_head.get("Metadata", {}).get(LANDING_ETAG_METADATA)
    if kept is None:
        return raw_head["ContentLength"] == landed["ContentLength"]
    return kept == landed["ETag"].strip('"')


KeptHeader = Literal["ContentType", "ContentEncoding", "ContentLanguage", "ContentDisposition", "CacheControl"]
_KEPT_HEADERS: tuple[KeptHeader, ...] = get_args(KeptHeader)
"""The source's headers a copy with MetadataDirective=COPY would keep and REPLACE sets anew."""


def _copy_arguments(head: HeadObjectOutputTypeDef, key: str) -> dict[str, Any]:
    """The copy's ExtraArgs: the landing key and the landed ETag added to the source's user metadata, its
    content headers kept. Given explicitly, they are the same for a single and a multipart copy (which copies
    no metadata)."""
    return {
        "MetadataDirective": "REPLACE",
        "Metadata": {
            **head.get("Metadata", {}),
            **landing_metadata(key),
            LANDING_ETAG_METADATA: head["ETag"].strip('"'),
        },
        **{name: head[name] for name in _KEPT_HEADERS if head.get(name)},
    }


def run(
    s3: S3Client,
    landing: str,
    raw: str,
    quarantine: str,
    contracts: set[str],
    limit: int = 500,
    *,
    record: Callable[[Entry], None],
) -> dict[str, Any]:
    """Move what landed to raw (or quarantine). Each file is recorded (`record`, the ledger) once it is in
    raw or quarantine and before its landed version is deleted: a run that fails to record leaves the file in
    landing, and the next run finds it copied, records it and deletes it; no file leaves landing unrecorded."""
    moved, already, unroutable, conflicts = [], [], [], []
    ingested: list[dict[str, Any]] = []  # each file in raw as the ledger records it (`_ingested_entry`)
    refused: list[dict[str, Any]] = []
    listed, retracted = _landed(s3, landing, limit)
    for item in retracted:
        logger.warning(
            "landed version deleted by its uploader before ingest; not ingested",
            extra={"key": item.key, "version": item.version},
        )
    for action in plan(listed, contracts):
        source = action.source
        if isinstance(action, Unroutable):
            quarantine_file(
                s3,
                landing,
                source.key,
                quarantine,
                quarantined_file_key(f"landing/{source.key}"),
                action.reason,
                version=source.version,
            )
            refused.append({"landing_key": source.key, "version": source.version, "reason": action.reason})
            record(_refused_entry(refused[-1]))
            _delete_landed(s3, landing, source)
            unroutable.append(source.key)
            logger.warning("unroutable landed file quarantined", extra={"key": source.key, "reason": action.reason})
            continue
        if not isinstance(action, Move):  # plan_copy returns Move or Unroutable; a new kind must be handled here
            raise TypeError(f"unexpected ingest action {action!r}")
        landed = head_or_none(s3, landing, source.key, version=source.version)
        if landed is None:  # moved meanwhile by another run (the smoke check invokes ingest beside the schedule)
            continue
        version = source.version
        target = action.target
        existing = head_or_none(s3, raw, target.key)
        if existing is not None and version and not _copied_from(existing, landed):
            # another upload of this name landed in the same second and holds the key: this one gets its own
            target = target.for_version(version)
            existing = head_or_none(s3, raw, target.key)
        if existing is None:
            copied: CopySourceTypeDef = {"Bucket": landing, "Key": source.key}
            if version:
                copied["VersionId"] = version
            s3.copy(
                copied,
                raw,
                target.key,
                ExtraArgs=_copy_arguments(landed, source.key),
            )
            moved.append(target.key)
        elif _copied_from(existing, landed):
            already.append(target.key)  # an earlier, interrupted run copied it
        else:
            conflicts.append(target.key)
            logger.error(
                "raw key exists with other content; landed file left in place",
                extra={"key": source.key, "raw_key": target.key},
            )
            continue
        ingested.append(
            {
                "raw_key": target.key,
                "landing_key": source.key,
                "landing_version": version,
                "landing_etag": landed["ETag"].strip('"'),
                "size": landed["ContentLength"],
            }
        )
        record(_ingested_entry(ingested[-1]))
        _delete_landed(s3, landing, source)
    return {
        "moved": moved,
        "already_in_raw": already,
        "quarantined": unroutable,
        "conflicts": conflicts,
        "retracted": [item.key for item in retracted],
        "ingested": ingested,
        "unroutable": refused,
    }


def _ingested_entry(item: dict[str, Any]) -> Entry:
    """The ledger's record of a file copied (or found copied) to raw, by its raw key."""
    return Entry(item["raw_key"], Step.INGESTED, {k: v for k, v in item.items() if k != "raw_key"})


def _refused_entry(item: dict[str, Any]) -> Entry:
    """The ledger's record of an unroutable file, quarantined, by its landing key and version."""
    return Entry(
        landing_file_id(item["landing_key"], item["version"]),
        Step.QUARANTINED,
        {"landing_key": item["landing_key"], "reason": item["reason"]},
    )


def _delete_landed(s3: S3Client, landing: str, item: Landed) -> None:
    """That version only: one uploaded under the same name meanwhile stays for the next run."""
    if item.version:
        s3.delete_object(Bucket=landing, Key=item.key, VersionId=item.version)
    else:
        s3.delete_object(Bucket=landing, Key=item.key)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ledger = ledger_from_environment()
    result = run(
        boto3.client("s3"),
        os.environ["LANDING_BUCKET"],
        os.environ["RAW_BUCKET"],
        os.environ["QUARANTINE_BUCKET"],
        set(_contracts()),
        record=lambda entry: record_all(ledger, [entry]),
    )
    metrics.add_metric(name=Metric.FILES_INGESTED, unit=MetricUnit.Count, value=len(result["moved"]))
    metrics.add_metric(name=Metric.FILES_QUARANTINED, unit=MetricUnit.Count, value=len(result["quarantined"]))
    logger.info("ingest finished", extra=result)
    if result["conflicts"]:
        raise IngestConflict(f"raw already holds other files at {result['conflicts']}; the landed files stay")
    return result
