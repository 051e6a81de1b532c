"""A curated table's builds: which one readers see, and what each took in.

A promotion merges the batches that passed the gate since the table's current build into it and writes the
result as a new build in a folder of its own (`pipeline.layout.build_folder`: one per attempt, so that two
promotions of a table at once never write into each other's files); only once that build is written in full
and has passed the table's checks does one conditional PUT of `_CURRENT.json` make it the build readers read
(conditional on the pointer being the one the build started from: of two promotions at once, one fails). A
reader (training, the notebook, Athena through the catalog) therefore sees the old build or the new one,
never a partial one, and may pin a build by number while it is kept (`KEEP_BUILDS`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from pipeline.contract import Contract
from pipeline.layout import DELETED_FOLDER, build_number, current_build_key, raw_key_of_staged, table_prefix
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

    @property
    def prefix(self) -> str:
        return f"{table_prefix(self.dataset, self.table)}{self.folder}/"

    @property
    def manifest_key(self) -> str:
        return f"{self.prefix}{MANIFEST}"

    @property
    def deleted_prefix(self) -> str:
        return f"{table_prefix(self.dataset, self.table)}{DELETED_FOLDER}/{self.folder}/"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> Build:
        try:
            fields = json.loads(text)
            return cls(**fields)
        except (ValueError, TypeError) as error:
            raise BuildError(f"{source} is not a build pointer (pipeline/builds.py: Build): {error}") from error


def build_fingerprint(contract: Contract) -> str:
    """What a build's rows depend on in the contract: its columns and their types, the key, the features and
    label, the version column and the delete rule. A build onto one made under another fingerprint is from
    scratch (a column that became a feature would read null in every earlier row; deletes or versions would not
    be judged again)."""
    delete_when = contract.delete_when
    described = {
        "columns": [[c.name, c.type] for c in contract.columns],
        "key": list(contract.key),
        "features": list(contract.features),
        "label": contract.label,
        "version": contract.version,
        "delete_when": None if delete_when is None else [delete_when.column, list(delete_when.values)],
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


def manifest(runs: list[str]) -> str:
    return json.dumps({"runs": sorted(runs)}) + "\n"


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


def folders_to_remove(folders: list[str], current: Build) -> list[str]:
    """The build folders a promotion removes once `current` is the build readers read: every folder of a build
    up to its number that is neither it nor one it keeps (older builds, attempts that were never made
    current). A folder of a later build (a promotion still running, or one that died) is left to the
    promotion that passes it."""
    keep = {current.folder, *current.kept}
    return sorted(
        folder
        for folder in folders
        if (number := build_number(folder)) is not None and number <= current.number and folder not in keep
    )


def promoted_entries(build: Build, runs: list[str]) -> list[Entry]:
    """The ledger's record of each file a build took in: the build readers find it in."""
    return [Entry(raw_key_of_staged(run), Step.PROMOTED, {"build": build.number}) for run in runs]
