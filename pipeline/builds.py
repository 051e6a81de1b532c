"""A curated table's builds: which one readers see, and what each took in.

A promotion merges the batches that passed the gate since the table's current build into it and writes the
result as a new build in a folder of its own (`pipeline.layout.build_prefix`); only once that build is
written in full and has passed the table's checks does one PUT of `_CURRENT.json` make it the build readers
read. A reader (training, the notebook, Athena through the catalog) therefore sees the old build or the new
one, never a partial one, and may pin a build by number while it is kept (`KEEP_BUILDS`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

from pipeline.layout import build_prefix, current_build_key, raw_key_of_staged
from pipeline.ledger import Entry, Step

KEEP_BUILDS = 10
"""Builds kept behind the current one: what a training run pinned a while ago can still read. Older ones are
removed by the promotion that makes a new build current."""


class BuildError(ValueError):
    """A build pointer or a pinned build that cannot be read as asked."""


@dataclass(frozen=True)
class Build:
    """What `_CURRENT.json` says of the build readers read."""

    dataset: str
    table: str
    number: int
    rows: int
    built_at: str
    merged: int = 0
    """How many passed runs this build took in (each is marked PROMOTED with the build's number in staging,
    and the ledger records it)."""
    from_scratch: bool = False
    """Built from every passed batch (a first build, a backfill) rather than onto the build before."""

    @property
    def prefix(self) -> str:
        return build_prefix(self.dataset, self.table, self.number)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> Build:
        try:
            fields = json.loads(text)
            return cls(**fields)
        except (ValueError, TypeError) as error:
            raise BuildError(f"{source} is not a build pointer (pipeline/builds.py: Build): {error}") from error


def current_build(read_text: Callable[[str], str | None], dataset: str, table: str) -> Build | None:
    """The table's current build; None before its first. `read_text(key)` reads a key of the curated store
    (None where absent)."""
    key = current_build_key(dataset, table)
    text = read_text(key)
    return None if text is None else Build.from_json(text, key)


def builds_to_remove(numbers: list[int], current: int, keep: int = KEEP_BUILDS) -> list[int]:
    """The builds a promotion removes once `current` is the build readers read: all but the newest `keep`
    before it. A build after `current` (left by a promotion that failed before its switch) is overwritten by
    the next one, never read, and left to it."""
    older = sorted(n for n in numbers if n < current)
    return older[: max(len(older) - keep, 0)]


def promoted_entries(build: Build, runs: list[str]) -> list[Entry]:
    """The ledger's record of each file a build took in: the build readers find it in."""
    return [Entry(raw_key_of_staged(run), Step.PROMOTED, {"build": build.number}) for run in runs]
