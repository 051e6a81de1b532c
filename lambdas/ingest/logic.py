"""Which landed files go where: decided without touching S3, so that tests can call it directly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline.layout import LayoutError, RawObject, raw_object_for_landing


@dataclass(frozen=True)
class Landed:
    key: str
    last_modified: datetime
    size: int


@dataclass(frozen=True)
class Move:
    source: Landed
    target: RawObject


@dataclass(frozen=True)
class Unroutable:
    source: Landed
    reason: str


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
