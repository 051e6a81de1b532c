"""A curated table's builds: which one readers see, and what each took in.

A promotion merges the batches that passed the gate since the table's current build into it and writes the
result as a new build in a folder of its own (`pipeline.layout.build_folder`: one per attempt, so that two
promotions of a table at once never write into each other's files); only once that build is written in full
and has passed the table's checks does one conditional PUT of `_CURRENT.json` make it the build readers read
(conditional on the pointer being the one the build started from: of two promotions at once, one fails). A
reader (training, the notebook, Athena through the catalog) therefore sees the old build or the new one,
never a partial one, and may pin a build by number while it is kept (`KEEP_BUILDS`).

A table is cut into partitions (the contract's `partition`: key hash buckets, or a key column's value). A build
rewrites only the partitions its batches touch, into its own folder; the pointer names, per partition, the
build folder that holds it now (`Partition`), so a build's cost follows what changed, not the table's size.
A key lives in one partition, so taking the latest row per key partition by partition is taking it over the
table, and a build's checks (rows, one row per key, each column's mean) combine untouched partitions' recorded
figures with the rewritten ones' without reading the rest.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.contract import Contract
from pipeline.gate import Moments
from pipeline.layout import (
    DELETED_FOLDER,
    build_number,
    current_build_key,
    partition_folder,
    raw_key_of_staged,
    table_prefix,
)
from pipeline.ledger import Entry, Step

MANIFEST = "_manifest.json"
"""In a build's folder: the passed runs the build holds (`pipeline.layout.passed_runs`' names), written with the
build and before its switch, so that what the current build holds is whatever the pointer names, never a
record a losing or dead promotion left."""
KEEP_BUILDS = 10
"""Builds kept behind the current one: what a training run pinned a while ago can still read. Older ones are
removed by the promotion that makes a new build current."""


class BuildError(ValueError):
    """A build pointer or a pinned build that cannot be read as asked."""


class BuildConflict(RuntimeError):
    """Another promotion of the table made its build current first: this one is not made current."""


@dataclass(frozen=True)
class Partition:
    """One partition of a build: the build folder holding its rows (written by the build that last touched
    it), and the figures a later build's checks combine without reading it."""

    folder: str
    rows: int
    """Its live rows (as many keys: a build is checked to hold one row per key)."""
    deleted: int = 0
    """Its deleted keys, kept under `_deleted/` to order later rows."""
    moments: dict[str, list[float]] = field(default_factory=dict)
    """Per column of `quality.max_mean_shift`: [values, mean, sum of squared deviations] of its live rows,
    which combine across partitions exactly (`combined_moments`)."""


@dataclass(frozen=True)
class Build:
    """What `_CURRENT.json` says of the build readers read."""

    dataset: str
    table: str
    number: int
    rows: int
    built_at: str
    folder: str
    """The build's folder in the table's (`pipeline.layout.build_folder`)."""
    merged: int = 0
    """How many passed runs this build merged (the ledger records each; its manifest holds every run it holds)."""
    from_scratch: bool = False
    """Built from every passed batch (a first build, a backfill, a contract change) rather than onto the
    build before."""
    contract: str = ""
    """The fingerprint of what a build's rows depend on in the contract (`build_fingerprint`):
    a build onto one made under another is from scratch."""
    kept: list[str] = field(default_factory=list)
    """The folders of the builds before it that are kept (newest first): a pinned build is one of these."""
    partitions: dict[str, Partition] | None = None
    """Its partitions by token (`etl_spark.transforms.partition_token`); None for a build made before tables
    were partitioned, whose rows are all in its own folder."""
    partitioning: dict[str, Any] | None = None
    """The contract's partitioning its partitions were cut by (`Partitioning.as_dict`): a build onto it under
    another would not find its rows' partitions, and is refused (a build from scratch is not)."""
    superseded: dict[str, str] = field(default_factory=dict)
    """The partitions of the build it was made onto that it rewrote (token: folder): once no kept build is older
    than this one, nothing reads them and they are removed (`partitions_to_remove`)."""

    @property
    def prefix(self) -> str:
        return f"{table_prefix(self.dataset, self.table)}{self.folder}/"

    @property
    def manifest_key(self) -> str:
        return f"{self.prefix}{MANIFEST}"

    @property
    def deleted_prefix(self) -> str:
        return f"{table_prefix(self.dataset, self.table)}{DELETED_FOLDER}/{self.folder}/"

    def live_folders(self, tokens: Iterable[str] | None = None) -> list[str]:
        """Its live rows' folders, relative to the table's (`<build folder>/partition=<token>`), in token order:
        what a reader reads (of partitions `tokens` alone, where given). Empty for a build of no rows."""
        if self.partitions is None:
            return [self.folder]
        wanted = None if tokens is None else set(tokens)
        return [
            partition_folder(part.folder, token)
            for token, part in sorted(self.partitions.items())
            if part.rows and (wanted is None or token in wanted)
        ]

    def live_prefixes(self, tokens: Iterable[str] | None = None) -> list[str]:
        """`live_folders` as keys of the curated bucket."""
        return [f"{table_prefix(self.dataset, self.table)}{folder}/" for folder in self.live_folders(tokens)]

    def deleted_prefixes(self, tokens: Iterable[str]) -> list[str]:
        """The deleted keys' folders of its partitions `tokens` that have any (the whole build's `_deleted/`
        folder for a build from before partitions)."""
        table = table_prefix(self.dataset, self.table)
        if self.partitions is None:
            return [self.deleted_prefix]
        return [
            f"{table}{DELETED_FOLDER}/{partition_folder(part.folder, token)}/"
            for token in sorted(tokens)
            if (part := self.partitions.get(token)) is not None and part.deleted
        ]

    def references(self) -> set[tuple[str, str | None]]:
        """(folder, token) of every partition it reads; (its folder, None) for a build from before partitions."""
        if self.partitions is None:
            return {(self.folder, None)}
        return {(part.folder, token) for token, part in self.partitions.items()}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> Build:
        try:
            fields = json.loads(text)
            if fields.get("partitions") is not None:
                fields["partitions"] = {t: Partition(**p) for t, p in fields["partitions"].items()}
            return cls(**fields)
        except (ValueError, TypeError, AttributeError) as error:
            raise BuildError(f"{source} is not a build pointer (pipeline/builds.py: Build): {error}") from error


def combined_moments(parts: Iterable[list[float]]) -> Moments:
    """A column's mean and sample standard deviation over partitions, from each one's [values, mean, sum of
    squared deviations] (Chan et al.'s pairwise update: exact, and stable where the values are large and vary
    little)."""
    count, mean, squares = 0.0, 0.0, 0.0
    for n, part_mean, part_squares in parts:
        if not n:
            continue
        total = count + n
        delta = part_mean - mean
        mean += delta * n / total
        squares += part_squares + delta * delta * count * n / total
        count = total
    if not count:
        return Moments(None, None)
    return Moments(mean, math.sqrt(squares / (count - 1)) if count > 1 else None)


def table_moments(partitions: Mapping[str, Partition], columns: Iterable[str]) -> dict[str, Moments | None]:
    """Each column's moments over a build's partitions; None for a column some partition with rows has no
    figures of (not checked when it was written, or sensitive: never recorded): to be read from the rows."""
    return {
        name: combined_moments(p.moments[name] for p in partitions.values() if p.rows)
        if all(name in p.moments for p in partitions.values() if p.rows)
        else None
        for name in columns
    }


def build_fingerprint(contract: Contract) -> str:
    """What a build's rows depend on in the contract: its columns and their types, the key, the features and
    label, the version column, the delete rule, the table's own transform and the partitioning (a partition's
    token names other rows under another). A build onto one made under another fingerprint is from scratch (a
    column that became a feature would read null in every earlier row; deletes or versions would not be judged
    again; an edited transform would leave the rows built before it as they were)."""
    delete_when = contract.delete_when
    described = {
        "columns": [[c.name, c.type] for c in contract.columns],
        "key": list(contract.key),
        "features": list(contract.features),
        "label": contract.label,
        "version": contract.version,
        "delete_when": None if delete_when is None else [delete_when.column, list(delete_when.values)],
        "partition": contract.partition.as_dict(),
        # the table's transform, where it has one (absent otherwise, so that tables without one keep the
        # fingerprints their builds were made under)
        **({"transform": contract.transform} if contract.transform else {}),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def current_pointer(read_text: Callable[[str], str | None], dataset: str, table: str) -> tuple[Build, str] | None:
    """The table's current build and its pointer's text (a build onto it switches the pointer from that text);
    None before its first build. `read_text(key)` reads a key of the curated store (None where absent)."""
    key = current_build_key(dataset, table)
    text = read_text(key)
    return None if text is None else (Build.from_json(text, key), text)


def current_build(read_text: Callable[[str], str | None], dataset: str, table: str) -> Build | None:
    """The table's current build; None before its first (`current_pointer`)."""
    pointed = current_pointer(read_text, dataset, table)
    return None if pointed is None else pointed[0]


def held_runs(read_text: Callable[[str], str | None], build: Build) -> list[str]:
    """The passed runs `build` holds (its manifest)."""
    text = read_text(build.manifest_key)
    if text is None:
        raise BuildError(f"{build.manifest_key} is missing: the build's folder is not whole; backfill the table")
    runs = json.loads(text)["runs"]
    if not isinstance(runs, list) or not all(isinstance(run, str) for run in runs):
        raise BuildError(f"{build.manifest_key} is not a manifest of runs")
    return runs


def manifest(runs: list[str], build: Build) -> str:
    """A build's manifest: the runs it holds, and the build itself (what a reader pinning it reads)."""
    return json.dumps({"runs": sorted(runs), "build": json.loads(build.to_json())}) + "\n"


def kept_build(read_text: Callable[[str], str | None], current: Build, folder: str) -> Build:
    """The build in `folder`, one `current` keeps (or `current`), as its manifest records it; a build from before
    manifests held it has its rows in its folder."""
    if folder == current.folder:
        return current
    pinned = Build(current.dataset, current.table, build_number(folder) or 0, 0, "", folder)
    text = read_text(pinned.manifest_key)
    if text is None:
        raise BuildError(f"{pinned.manifest_key} is missing: build {pinned.number}'s folder is not whole")
    recorded = json.loads(text).get("build")
    return pinned if recorded is None else Build.from_json(json.dumps(recorded), pinned.manifest_key)


def next_number(folders: list[str], current: Build | None) -> int:
    """The number of a table's next build: after every build whose folder is there and after the current one,
    so that no number names two builds (a build after a restore of an older pointer gets a number of its own:
    a pinned number reads what it read before)."""
    numbers = [n for n in map(build_number, folders) if n is not None]
    return max([*numbers, 0 if current is None else current.number]) + 1


def pinned_folder(current: Build, number: int) -> str:
    """The folder of build `number` of the table whose current build is `current`, while it is kept."""
    for folder in [current.folder, *current.kept]:
        if build_number(folder) == number:
            return folder
    raise BuildError(
        f"build {number} of {current.dataset}/{current.table} is not kept (the current build is "
        f"{current.number}; the {KEEP_BUILDS} before it are kept): pin a kept build, or none for the current one"
    )


def folders_to_remove(folders: list[str], current: Build, kept: Iterable[Build] = ()) -> list[str]:
    """The build folders a promotion removes once `current` is the build readers read: every folder of a build
    up to its number that is neither it nor one it keeps (older builds, attempts that were never made
    current) nor holds a partition either reads (`kept`: the builds `current` keeps). A folder of a later build
    (a promotion still running, or one that died) is left to the promotion that passes it."""
    keep = {current.folder, *current.kept} | {folder for b in (current, *kept) for folder, _ in b.references()}
    return sorted(
        folder
        for folder in folders
        if (number := build_number(folder)) is not None and number <= current.number and folder not in keep
    )


def partitions_to_remove(current: Build, kept: list[Build]) -> list[str]:
    """The partition folders (relative to the table's) nothing reads any more once `current` is made current:
    those a build it keeps (or itself) rewrote (`superseded`: only builds before that one read them) that no
    kept build reads. Each build's are removed once the builds before it are no longer kept; they are
    candidates while it is kept, so a promotion that died before removing them leaves them to the next."""
    referenced = {pair for build in (current, *kept) for pair in build.references()}
    candidates = {(folder, token) for build in (current, *kept) for token, folder in build.superseded.items()}
    return [partition_folder(folder, token) for folder, token in sorted(candidates - referenced)]


def promoted_entries(build: Build, runs: list[str]) -> list[Entry]:
    """The ledger's record of each file a build took in: the build readers find it in."""
    return [Entry(raw_key_of_staged(run), Step.PROMOTED, {"build": build.number}) for run in runs]
