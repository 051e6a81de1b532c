"""Which landed files go where: decided without touching S3, so that tests can call it directly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline.layout import LayoutError, RawObject, raw_object_for_landing


@dataclass(frozen=True)
class Landed:
    """One landed object version: ingest copies and deletes this version, whatever the key holds by then."""

    key: str
    last_modified: datetime
    size: int
    version: str | None = None
    """None in a bucket that never kept versions (S3 lists their id as "null")."""
    etag: str | None = None
    current: bool = False
    """The key's current version: landed after any delete marker of the key, whatever the clock says."""


@dataclass(frozen=True)
class Move:
    source: Landed
    target: RawObject


@dataclass(frozen=True)
class Unroutable:
    source: Landed
    reason: str


def uploads(versions: list[Landed], deleted_at: dict[str, datetime]) -> tuple[list[Landed], list[Landed]]:
    """(to ingest, retracted) among the listed versions of landing: every version of a key is an upload of
    its own (a name reused before ingest ran loses no upload), except those older than the key's latest delete
    marker, which whoever landed them deleted: they are left to the noncurrent-version expiry, never ingested.
    Ingest itself deletes by version id, which leaves no delete marker. S3 lists times to the second: a version
    of the same second as a delete marker is taken for older unless it is the key's current version."""
    kept: list[Landed] = []
    retracted: list[Landed] = []
    for version in versions:
        deleted = deleted_at.get(version.key)
        withdrawn = deleted is not None and version.last_modified <= deleted and not version.current
        (retracted if withdrawn else kept).append(version)
    return kept, retracted


def plan(landed: list[Landed], known_contracts: set[str]) -> list[Move | Unroutable]:
    """A move to raw for every landed file that names a known dataset/table; the rest are unroutable
    (they go to quarantine with the reason: nothing is dropped). Folder markers are skipped."""
    actions: list[Move | Unroutable] = []
    for item in sorted(landed, key=lambda i: (i.last_modified, i.key)):
        if item.key.endswith("/"):
            continue
        try:
            target = raw_object_for_landing(item.key, item.last_modified)
        except LayoutError as exc:
            actions.append(Unroutable(item, str(exc)))
            continue
        if target.contract_name not in known_contracts:
            actions.append(
                Unroutable(
                    item,
                    f"no data contract for {target.contract_name} "
                    f"(known: {', '.join(sorted(known_contracts)) or 'none'})",
                )
            )
        else:
            actions.append(Move(item, target))
    return actions
