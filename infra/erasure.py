"""Erase one data subject's rows from every store of a table, and record the erasure.

    python -m infra.erasure --branch main --dataset diabetes --table patients --key P00308 --request DSR-2041
    python -m infra.erasure --local build/pipeline-run --dataset diabetes --table patients --key P00308 ...

In AWS (the workspace of `--branch`, bucket names from its storage stack's outputs, the caller's credentials):
every version of every object under the table's prefixes in landing, raw, quarantine, staging and curated is
read; one that holds the subject is rewritten without its rows as a new version (its metadata kept) and
then that version and every older one holding the subject are deleted, since a bucket's versions are data
too. `--local` does the same on the local pipeline's folders (`make pipeline`). What is to be erased is
decided by pipeline/erasure.py; this module lists, reads, writes and deletes.

The record (`erasures/<request>.json` in the artifacts bucket, or the local folder) names the request, the
table, when, and what was rewritten or deleted, with row counts: never the subject's key, which is what
was to be forgotten. Run it again to check: a second run finds nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict, get_args

from infra.stack_outputs import (
    ARTIFACTS_OUTPUT,
    CURATED_OUTPUT,
    LANDING_OUTPUT,
    QUARANTINE_OUTPUT,
    RAW_OUTPUT,
    STAGING_OUTPUT,
)
from pipeline.contract import Contract, contract_named, load_contracts
from pipeline.erasure import ErasureError, Kind, Subject, erase
from pipeline.layout import table_runs_prefix

if TYPE_CHECKING:  # the stubs are a development dependency, not installed where the erasure runs
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PutObjectRequestTypeDef

STORES = ("quarantine", "staging", "curated", "raw", "landing")
"""In the order erased: what the pipeline derives first, its sources last. Rewriting a raw file starts the
pipeline on it again (its object-created event), which then derives rows without the subject."""
PASSES = 3
"""Walks until one finds nothing: a pipeline run during the erasure may write the subject again."""
RECORDS_STORE = "artifacts"
REQUEST_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
OUTPUT_OF_STORE = {
    "landing": LANDING_OUTPUT,
    "raw": RAW_OUTPUT,
    "quarantine": QUARANTINE_OUTPUT,
    "staging": STAGING_OUTPUT,
    "curated": CURATED_OUTPUT,
    "artifacts": ARTIFACTS_OUTPUT,
}
"""The storage stack's outputs naming each bucket."""


@dataclass(frozen=True)
class Version:
    key: str
    version_id: str | None  # None: a store without versions (the local folders)
    latest: bool


class Store(Protocol):
    name: str

    def versions(self, prefix: str) -> Iterator[Version]: ...
    def read(self, version: Version) -> bytes: ...
    def replace(self, version: Version, data: bytes) -> None: ...
    def delete(self, version: Version) -> None: ...


def prefixes(contract: Contract) -> dict[str, list[str]]:
    """Where a table's rows can be, per store (pipeline/layout.py): quarantined files include those ingest
    set aside under their landing name, whatever their dataset."""
    table = f"{contract.dataset}/{contract.table}/"
    return {
        "quarantine": [f"files/{table}", "files/landing/", f"rows/{table}"],
        "staging": [table, table_runs_prefix(contract.dataset, contract.table)],
        "curated": [table],
        "raw": [table],
        "landing": [table],
    }


def kind_of(store: str, key: str, table: str = "") -> Kind | None:
    """How an object holds rows; None for what cannot hold any (local Spark's checksums, empty markers).
    A file ingest set aside under its landing name is read as this table's (`<dataset>/<table>/`) only under
    its prefix; any other is of unknown layout: named if it holds the key, never deleted."""
    name = key.rsplit("/", 1)[-1]
    if name.endswith(".crc") or name == "_SUCCESS":
        return None
    if key.endswith(".parquet"):
        return Kind.PARQUET
    if store == "quarantine" and key.startswith("rows/") and name.endswith(".json"):
        return Kind.REJECTED_ROWS
    if store == "quarantine" and key.startswith("files/landing/") and not key.startswith(f"files/landing/{table}"):
        return Kind.OTHER
    if store in ("landing", "raw") or (
        store == "quarantine" and key.startswith("files/") and not key.endswith(".reason.json")
    ):
        return Kind.CSV
    return Kind.OTHER


@dataclass
class Record:
    """What one erasure did, without the subject's key."""

    request: str
    table: str
    erased_at: str
    rewritten: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    versions_deleted: int = 0
    rows_removed: dict[str, int] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.rewritten or self.deleted or self.versions_deleted or self.unresolved)


def erase_subject(
    stores: dict[str, Store],
    subject: Subject,
    request: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    replicas: dict[str, list[Store]] | None = None,
) -> Record:
    """Every store's objects under the table's prefixes (and their replicas'): the latest version rewritten
    without the subject (or deleted, if nothing of it can be kept), every version that held it deleted.
    Walks again until a walk finds nothing (at most PASSES). An object that cannot be read or written is
    named in the record's `unresolved`, and the walk goes on."""
    if not REQUEST_PATTERN.match(request):
        raise ErasureError(f"request {request!r}: give the erasure request's ID, 1-64 of A-Z a-z 0-9 . _ -")
    record = Record(request, subject.contract.name, now().strftime("%Y-%m-%dT%H:%M:%SZ"))
    for _ in range(PASSES):
        record.unresolved = []  # what the last walk could not erase
        if not _walk(stores, replicas or {}, subject, record):
            return record
    record.unresolved.append(
        f"the subject was written again during each of {PASSES} walks (a pipeline run?): "
        "run the erasure again when the pipeline is idle"
    )
    return record


def _walk(stores: dict[str, Store], replicas: dict[str, list[Store]], subject: Subject, record: Record) -> bool:
    """One walk over every store; whether it erased anything (what it could not erase is in `unresolved`)."""
    found = False
    table = f"{subject.contract.dataset}/{subject.contract.table}/"
    for store_name, store_prefixes in prefixes(subject.contract).items():
        for store in (stores[store_name], *replicas.get(store_name, [])):
            for prefix in store_prefixes:
                try:
                    versions = list(store.versions(prefix))
                except Exception as exc:  # a store that cannot be listed is named; the others are erased
                    record.unresolved.append(f"{store.name}/{prefix}: cannot list it: {type(exc).__name__}: {exc}")
                    continue
                for version in versions:
                    kind = kind_of(store_name, version.key, table)
                    if kind is not None:
                        found |= _erase_version(store, version, kind, subject, record)
    return found


def _erase_version(store: Store, version: Version, kind: Kind, subject: Subject, record: Record) -> bool:
    """Erase the subject from one version; whether there was anything to erase and it was."""
    where = f"{store.name}/{version.key}"
    try:
        erased = erase(kind, version.key, store.read(version), subject)
        if erased is None:
            return False
        if version.latest and erased.data is not None:
            store.replace(version, erased.data)
            record.rewritten.append(where)
        elif version.latest:  # nothing of it can be kept: no older version may become current either
            store.delete(replace(version, version_id=None))
            record.deleted.append(where)
        if version.version_id is not None or erased.data is None:
            store.delete(version)
            record.versions_deleted += version.version_id is not None
    except ErasureError as exc:
        record.unresolved.append(str(exc).replace(version.key, where, 1))
        return False
    except Exception as exc:  # one object's failure is recorded, and the others are still erased
        record.unresolved.append(f"{where}: {type(exc).__name__}: {exc}")
        return False
    record.rows_removed[store.name] = record.rows_removed.get(store.name, 0) + erased.rows
    return True


class LocalStore:
    """A folder of the local pipeline (build/pipeline-run/<store>): one version per file."""

    def __init__(self, name: str, root: Path) -> None:
        self.name, self.root = name, root

    def versions(self, prefix: str) -> Iterator[Version]:
        base = self.root / prefix
        if base.is_dir():
            for path in sorted(p for p in base.rglob("*") if p.is_file()):
                yield Version(path.relative_to(self.root).as_posix(), None, True)

    def read(self, version: Version) -> bytes:
        return (self.root / version.key).read_bytes()

    def replace(self, version: Version, data: bytes) -> None:
        path = self.root / version.key
        path.write_bytes(data)
        path.with_name(f".{path.name}.crc").unlink(missing_ok=True)  # Spark's checksum of the old content

    def delete(self, version: Version) -> None:
        path = self.root / version.key
        path.unlink(missing_ok=True)
        path.with_name(f".{path.name}.crc").unlink(missing_ok=True)


class VersionArgument(TypedDict, total=False):
    """The version an S3 object call names: none for an object written before versioning (ID "null")."""

    VersionId: str


KeptHeader = Literal["ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage"]
_KEPT_HEADERS: tuple[KeptHeader, ...] = get_args(KeptHeader)
"""The object's headers a rewrite keeps, with its user metadata and storage class."""


class S3Store:
    """A versioned bucket: every version is listed; a rewrite is a new version; deletes name the version."""

    def __init__(self, name: str, s3: S3Client, bucket: str) -> None:
        self.name, self.s3, self.bucket = name, s3, bucket

    def versions(self, prefix: str) -> Iterator[Version]:
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Versions", []):
                version_id = item.get("VersionId")
                yield Version(item["Key"], None if version_id in (None, "null") else version_id, item["IsLatest"])

    def _id(self, version: Version) -> VersionArgument:
        return {"VersionId": version.version_id} if version.version_id else {}

    def read(self, version: Version) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=version.key, **self._id(version))["Body"].read()
        return body

    def replace(self, version: Version, data: bytes) -> None:
        """A new version with the object's metadata and headers (the landing name ingest keeps, its encoding)."""
        head = self.s3.head_object(Bucket=self.bucket, Key=version.key, **self._id(version))
        rewrite: PutObjectRequestTypeDef = {
            "Bucket": self.bucket,
            "Key": version.key,
            "Body": data,
            "Metadata": head.get("Metadata", {}),
        }
        for name in _KEPT_HEADERS:
            if head.get(name):
                rewrite[name] = head[name]
        if head.get("StorageClass"):
            rewrite["StorageClass"] = head["StorageClass"]
        self.s3.put_object(**rewrite)

    def delete(self, version: Version) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=version.key, **self._id(version))


def write_record(record: Record, save: Callable[[str, bytes], None]) -> str:
    key = f"erasures/{record.request}.json"
    save(key, (json.dumps(asdict(record), indent=2) + "\n").encode())
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.erasure", description=(__doc__ or "").splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--branch", help="the workspace's git ref (main: int, a release tag: prd)")
    where.add_argument("--local", type=Path, help="the local pipeline's folder (build/pipeline-run)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument(
        "--key",
        action="append",
        required=True,
        help="the subject's value of the contract's key (repeat for each column of a compound key)",
    )
    parser.add_argument("--request", required=True, help="the erasure request's ID, kept in the record")
    args = parser.parse_args(argv)
    try:
        subject = Subject.of(contract_named(load_contracts(), f"{args.dataset}/{args.table}"), args.key)
        stores, save, replicas = _local(args.local) if args.local else _workspace(args.branch)
        record = erase_subject(stores, subject, args.request, replicas=replicas)
        saved = write_record(record, save)
    except (ErasureError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{record.table}: {sum(record.rows_removed.values())} rows removed ({record.rows_removed or 'none found'}); "
        f"{len(record.rewritten)} objects rewritten, {len(record.deleted)} deleted, "
        f"{record.versions_deleted} versions deleted; record: {saved}"
    )
    for problem in record.unresolved:
        print(f"not erased: {problem}", file=sys.stderr)
    return 1 if record.unresolved else 0


Where = tuple[dict[str, Store], Callable[[str, bytes], None], dict[str, list[Store]]]
"""The stores, how to save the record, and the stores' replicas."""


def _local(root: Path) -> Where:
    if not root.is_dir():
        raise ErasureError(f"--local {root} is not a folder: run `make pipeline` first, or give its --out")

    def save(key: str, data: bytes) -> None:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)

    return {name: LocalStore(name, root / name) for name in STORES}, save, {}


def _workspace(branch: str) -> Where:
    import boto3

    from infra.config import DEFAULT_CONFIG_PATH, load_config
    from infra.naming import Component, stack_name
    from infra.smoke import stack_outputs
    from infra.workspace import resolve

    config = load_config(DEFAULT_CONFIG_PATH)
    target = resolve(branch, config.naming_rules)
    settings = config.stage(target.stage)
    cloudformation = boto3.client("cloudformation", region_name=settings.region)
    name = stack_name(config.project, target.workspace, Component.STORAGE)
    outputs = stack_outputs(cloudformation, name)
    missing = sorted(set(OUTPUT_OF_STORE.values()) - set(outputs or {}))
    if outputs is None or missing:
        raise ErasureError(
            f"stack {name} "
            + (
                "does not exist (is the branch deployed?)"
                if outputs is None
                else f"has no output {', '.join(missing)} (deploy this code's version of it)"
            )
        )
    s3 = boto3.client("s3", region_name=settings.region)
    stores: dict[str, Store] = {store: S3Store(store, s3, outputs[OUTPUT_OF_STORE[store]]) for store in STORES}
    artifacts = outputs[OUTPUT_OF_STORE[RECORDS_STORE]]
    # S3 replicates new objects and delete markers, never the deletion of a version: erase the copies too
    replicas: dict[str, list[Store]] = {}
    for rule in settings.storage.replication:
        if rule.bucket in STORES:
            bucket = rule.destination_bucket_arn.rsplit(":", 1)[-1]
            region = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
            replicas.setdefault(rule.bucket, []).append(
                S3Store(f"{rule.bucket}-replica", boto3.client("s3", region_name=region), bucket)
            )

    def save(key: str, data: bytes) -> None:
        s3.put_object(Bucket=artifacts, Key=key, Body=data, ContentType="application/json")

    return stores, save, replicas


if __name__ == "__main__":
    sys.exit(main())
