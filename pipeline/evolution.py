"""Contracts evolve safely: a change that existing data or readers cannot follow needs a major version.

    python -m pipeline.evolution --base origin/main     # the PR check (ci.yml): contracts at base vs now

A contract carries `contract_version: <n>` (1 when absent), its major version. A change is *breaking* where data
that was valid stops being valid, or a reader of curated loses what it read: a column dropped (a rename is a drop
and an add), a type narrowed, a nullable column made required, a required column added, a key changed, a rule
tightened (a higher minimum, a lower maximum, fewer allowed values, a new or changed pattern), a column curated
kept no longer kept. A breaking change passes only with a higher version (README: "Contracts evolve"); anything
else (a nullable column added, a type widened, a rule loosened, a description) keeps it. A version never goes
down.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from pipeline.contract import CONTRACTS_DIR, Column, Contract, ContractError, curated_columns, load_contracts

WIDER_TYPES = {"integer": ("double", "string"), "double": ("string",), "string": ()}
"""The types each type may widen to: every value the old one accepted, the new one accepts (as text: a number
is a string)."""


def _tightened(name: str, old: Column, new: Column) -> list[str]:
    """The rules of a column kept with a type no narrower that now refuse values the old ones accepted."""
    found = []
    if new.min is not None and (old.min is None or new.min > old.min):
        found.append(f"column {name!r}: minimum raised to {new.min:g}")
    if new.max is not None and (old.max is None or new.max < old.max):
        found.append(f"column {name!r}: maximum lowered to {new.max:g}")
    if new.allowed is not None and (old.allowed is None or not set(old.allowed) <= set(new.allowed)):
        found.append(f"column {name!r}: allowed values narrowed to {list(new.allowed)}")
    if new.pattern is not None and new.pattern != old.pattern:
        found.append(f"column {name!r}: pattern {'added' if old.pattern is None else 'changed'} ({new.pattern})")
    return found


def breaking_changes(old: Contract, new: Contract) -> list[str]:
    """What in `new` data valid under `old`, or readers of `old`'s curated table, cannot follow."""
    found = []
    if set(new.key) != set(old.key):  # its order only moves rows between buckets: a rebuild, nothing lost
        found.append(f"key changed from {list(old.key)} to {list(new.key)}")
    found += _file_changes(old, new)
    identity = {*old.key, old.version} - {None}  # a partition column is one of the key's
    kept = set(curated_columns(old))
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    for name, column in before.items():
        changed = after.get(name)
        if changed is None:
            found.append(f"column {name!r} dropped (a rename is a drop and an add)")
            continue
        if changed.type != column.type and changed.type not in WIDER_TYPES[column.type]:
            found.append(f"column {name!r}: type narrowed from {column.type} to {changed.type}")
            continue
        if changed.type != column.type and name in identity:
            found.append(f"column {name!r}: type of a key, version or partition column changed (rows' identity)")
            continue
        if changed.type == "string" and column.type != "string" and name in kept:
            found.append(f"column {name!r}: curated's type changes from {column.type} to string (its readers')")
        if column.type == "integer" and changed.type == "double" and changed.pattern is not None:
            found.append(f"column {name!r}: a pattern is checked on the number's text, which widening changes")
        if column.nullable and not changed.nullable:
            found.append(f"column {name!r}: nullable made required")
        if changed.type != "string" or column.type == "string":
            found += _tightened(name, column, changed)
        elif changed.pattern is not None or changed.allowed is not None:  # a number's text need not match them
            found.append(f"column {name!r}: widened to string with a pattern or allowed values")
    found += [
        f"column {name!r} added as required" for name, c in after.items() if name not in before and not c.nullable
    ]
    still = set(curated_columns(new))
    found += [
        f"curated no longer keeps column {name!r}"
        for name in curated_columns(old)
        if name not in still and name in after  # a dropped column is named above
    ]
    return found


def _file_changes(old: Contract, new: Contract) -> list[str]:
    """How files are read and what leaves curated, beyond the columns: producers' existing files must still parse
    and their rows still count."""
    found = [
        f"format.{field} changed: files written the old way no longer read the same"
        for field in ("delimiter", "quote", "encoding", "header")
        if getattr(old.format, field) != getattr(new.format, field)
    ]
    if set(old.format.null_values) - set(new.format.null_values):
        found.append("format.null_values lost a spelling: a value written that way is no longer empty")
    if not new.format.header and old.column_names != new.column_names[: len(old.column_names)]:
        found.append("columns reordered in a contract without a header: fields are read by position")
    if old.unknown_columns == "accept" and new.unknown_columns == "quarantine":
        found.append("unknown_columns: quarantine refuses files with extra columns that passed")
    if old.delete_when != new.delete_when and new.delete_when is not None:
        found.append("delete_when added or changed: rows that were kept now delete their key")
    if new.check_only and not old.check_only:
        found.append("check_only: the table no longer reaches curated")
    return found


def evolution_problems(old: Mapping[str, Contract], new: Mapping[str, Contract]) -> list[str]:
    """Every contract in both whose version does not say what changed: breaking changes without a higher
    `contract_version`, or a version gone down. Added contracts pass; a removed one is named (its files would
    no longer route)."""
    problems = []
    for name in sorted(old.keys() & new.keys()):
        was, now = old[name].contract_version, new[name].contract_version
        if now < was:
            problems.append(f"{name}: contract_version went down from {was} to {now}")
            continue
        breaking = breaking_changes(old[name], new[name])
        if breaking and now == was:
            problems.append(
                f"{name}: breaking changes need contract_version: {was + 1} (is {now}): " + "; ".join(breaking)
            )
    problems += [
        f"{name}: contract removed; its landed files would be quarantined as unroutable (keep it, or remove its "
        "landing first and say so in the PR)"
        for name in sorted(old.keys() - new.keys())
    ]
    return problems


def contracts_at(ref: str, repo: Path, directory: Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """The contracts as they were at git `ref` (none where the folder did not exist)."""
    import tempfile

    relative = directory.relative_to(repo).as_posix()
    listed = subprocess.run(
        ["git", "ls-tree", "-r", "-z", "--name-only", ref, "--", relative],  # noqa: S607 (the repository's git)
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    listed = [path for path in listed if path]
    with tempfile.TemporaryDirectory() as scratch:
        for path in listed:
            text = subprocess.run(
                ["git", "show", f"{ref}:{path}"],  # noqa: S607 (the repository's git)
                cwd=repo,
                capture_output=True,
                check=True,
            ).stdout
            target = Path(scratch) / Path(path).relative_to(relative)
            target.parent.mkdir(parents=True, exist_ok=True)  # a notes folder is listed too
            target.write_bytes(text)
        return load_contracts(scratch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])  # pragma: no mutate
    base_help = "the git ref to compare with (the PR's base, e.g. origin/main)"  # pragma: no mutate
    parser.add_argument("--base", required=True, help=base_help)  # pragma: no mutate
    args = parser.parse_args(argv)
    repo = CONTRACTS_DIR.parent
    try:
        problems = evolution_problems(contracts_at(args.base, repo), load_contracts())
    except subprocess.CalledProcessError as exc:
        print(f"::error::cannot read the contracts at {args.base}: {exc.stderr or exc}")
        return 2
    except ContractError as exc:
        print(f"::error::{exc}")
        return 2
    for problem in problems:
        print(f"::error::{problem}")
    if not problems:
        print(f"contracts: every change since {args.base} is compatible or has a major version of its own")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
