"""Test data from any contract: valid rows, and rows that each break one rule, with the reason the pipeline
gives (the contract's own check), so that a new dataset gets sample files with no hand-written row.

    python -m pipeline.generate --table clinic/appointments --rows 200 --out build/generated
    make pipeline DATA=build/generated

Values follow each column's rules: a value of `allowed`, a number within `min`..`max`, a text matching
`pattern` (generated from the pattern itself: literals, classes, repeats, groups and alternatives), a key
unique per row; a nullable column is sometimes empty, and free text sometimes holds the delimiter and the quote.
Files are written in the contract's format (delimiter, quote, encoding, header, null spelling).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from pipeline.contract import Column, Contract, ContractError, contract_named, load_contracts
from pipeline.csv_format import csv_text as format_csv_text

MAX_REPEAT_EXTRA = 3
"""An open repeat (`+`, `*`, `{n,}`) takes at most this many more than its minimum."""
TRIES = 50
PARTITION_VALUES = 5
"""Values of a partition column (`partition: {column: ...}`) a generated batch spreads over."""
LETTERS = "abcdefghijklmnopqrstuvwxyz"
"""What `.` and a negated class write (a negated class that excludes them all: `FALLBACK`)."""
FALLBACK = "~"
CATEGORIES = {
    sre_constants.CATEGORY_DIGIT: "0123456789",
    sre_constants.CATEGORY_WORD: LETTERS + "0123456789_",
    sre_constants.CATEGORY_SPACE: " ",
}
"""What `\\d`, `\\w` and `\\s` write; another category in a class (`\\D`) adds nothing."""
SPAN = 1000
"""A number column open at one end gets values up to this far from the other (0..SPAN where it has neither)."""
DECIMALS = 3
"""A double is written with at most this many decimals, as exports write prices and measures."""
NULL_SHARE = 0.1
"""The share of a nullable column's values left empty."""
FIT_STEPS_PER_ROW = 4
"""`_fit_mean` gives up after this many changes per row (a band no mix reaches)."""


class GenerateError(ValueError):
    """A contract this generator cannot make rows for: names the column and why."""


def _sample_class(items: list[tuple[Any, Any]], rng: random.Random) -> str:
    """One character of a `[...]` class (a negated class: a letter it does not exclude)."""
    choices: list[str] = []
    for op, arg in items:
        if op is sre_constants.LITERAL:
            choices.append(chr(arg))
        elif op is sre_constants.RANGE:
            choices += [chr(c) for c in range(arg[0], arg[1] + 1)]
        elif op is sre_constants.CATEGORY:
            choices += CATEGORIES.get(arg, "")
    if any(op is sre_constants.NEGATE for op, _ in items):
        return rng.choice([c for c in LETTERS if c not in choices] or [FALLBACK])
    if not choices:
        raise GenerateError(f"no character of class {items!r}")
    return rng.choice(choices)


def _sample(parsed: Any, rng: random.Random) -> str:
    out = []
    for op, arg in parsed:
        if op is sre_constants.LITERAL:
            out.append(chr(arg))
        elif op is sre_constants.NOT_LITERAL:  # `[^x]`
            out.append(_sample_class([(sre_constants.NEGATE, None), (sre_constants.LITERAL, arg)], rng))
        elif op is sre_constants.ANY:
            out.append(rng.choice(LETTERS))
        elif op is sre_constants.IN:
            out.append(_sample_class(list(arg), rng))
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            low, high, body = arg
            high = low + MAX_REPEAT_EXTRA if high is sre_constants.MAXREPEAT else high
            out += [_sample(body, rng) for _ in range(rng.randint(low, high))]
        elif op is sre_constants.SUBPATTERN:
            out.append(_sample(arg[-1], rng))
        elif op is sre_constants.BRANCH:
            out.append(_sample(rng.choice(arg[1]), rng))
        elif op is sre_constants.AT:
            continue  # ^, $, \b: nothing to write
        else:
            raise GenerateError(f"the pattern uses {op}, which the generator cannot write")
    return "".join(out)


def text_matching(pattern: str, rng: random.Random) -> str:
    """A text the pattern matches whole (as the contract checks it: `re.fullmatch`)."""
    parsed = sre_parse.parse(pattern)
    for _ in range(TRIES):
        text = _sample(parsed, rng)
        if re.fullmatch(pattern, text):
            return text
    raise GenerateError(f"no text matching {pattern!r} in {TRIES} tries")


def _number(column: Column, rng: random.Random, mean: tuple[float, float] | None = None) -> str:
    """Within min..max; a double within `mean` (the gate's mean_between) where the contract checks the column's
    mean, so that the generated batch passes the gate (integers are brought there by `_fit_mean`, which mixes
    whole numbers where no one of them lies in the band)."""
    open_low = 0 if column.max is None or column.max >= 0 else column.max - SPAN  # non-negative where max allows
    low = column.min if column.min is not None else open_low
    high = column.max if column.max is not None else low + SPAN
    if mean is not None and column.type == "double":
        low, high = max(low, mean[0]), min(high, mean[1])
    if column.type == "integer":
        low, high = math.ceil(low), math.floor(high)
    if low > high:
        raise GenerateError(f"column {column.name!r}: no {column.type} between {low:g} and {high:g}")
    if column.type == "integer":
        return str(rng.randint(int(low), int(high)))
    return repr(round(rng.uniform(low, high), DECIMALS))


FREE_TEXT = ("plain", "with, a comma", 'with "quotes"', "two\nlines", "accents: é, ü")


def valid_value(column: Column, rng: random.Random, index: int, mean: tuple[float, float] | None = None) -> str:
    """A text of `column` its checks accept (`mean`: `_number`'s)."""
    if column.allowed is not None:
        return str(rng.choice(column.allowed))
    if column.type != "string":
        return _number(column, rng, mean)
    if column.pattern is not None:
        return text_matching(column.pattern, rng)
    return f"{rng.choice(FREE_TEXT)} {index}"


def _written(column: Column, value: float) -> str:
    """A number as a file of `column`'s type holds it (an integer without a decimal point)."""
    return str(int(value)) if column.type == "integer" else repr(float(value))


def _fit_mean(rows: list[dict[str, str]], column: Column, band: tuple[float, float], rng: random.Random) -> None:
    """Move the batch's mean of `column` into `band` (the gate's mean_between) by setting rows to the column's
    lowest or highest valid value, one at a time: a mix of allowed values (0s and 1s) rather than a constant.
    An integer column open at an end takes the whole number beyond the band there (no one whole number may lie
    in it)."""
    if column.allowed is not None:
        lowest, highest = min(map(float, column.allowed)), max(map(float, column.allowed))
    else:
        lowest = column.min if column.min is not None else math.floor(band[0])
        highest = column.max if column.max is not None else math.ceil(band[1])

    def present() -> list[dict[str, str]]:
        return [row for row in rows if row[column.name] != ""]

    def towards() -> float | None:
        """The value to set a row to, or None where the mean is in the band (or no row has a value)."""
        values = [float(row[column.name]) for row in present()]
        mean = sum(values) / len(values) if values else None
        if mean is not None and mean < band[0]:
            return highest
        if mean is not None and mean > band[1]:
            return lowest
        return None

    for _ in range(FIT_STEPS_PER_ROW * len(rows)):
        value = towards()
        if value is None:
            return
        text = _written(column, value)
        movable = [row for row in present() if row[column.name] != text]
        if not movable:
            break
        rng.choice(movable)[column.name] = text
    if towards() is not None:
        raise GenerateError(
            f"column {column.name!r}: no mix of its valid values has a mean in [{band[0]:g}, {band[1]:g}]"
        )


@dataclass(frozen=True)
class Broken:
    """A row that breaks one rule, and the reason the pipeline gives for it."""

    row: dict[str, str]
    reason: str


def _breakers(column: Column) -> list[str]:
    """Texts of `column` that each break one of its rules."""
    texts = []
    if not column.nullable:
        texts.append("")
    if column.type != "string":
        texts.append("not-a-number")
    if column.min is not None:
        texts.append(str(math.floor(column.min) - 1))
    if column.max is not None:
        texts.append(str(math.ceil(column.max) + 1))
    if column.allowed is not None:
        beyond = "zz-not-allowed" if column.type == "string" else _written(column, max(map(float, column.allowed)) + 1)
        texts.append(beyond)
    if column.pattern is not None:
        texts.append("!")
    return texts


def _valid_rows(contract: Contract, rows: int, rng: random.Random) -> list[dict[str, str]]:
    """`rows` rows that pass every check of `contract`, with distinct keys (the gate's mean bands aside)."""
    valid: list[dict[str, str]] = []
    keys: set[tuple[str, ...]] = set()
    cut = contract.partition.column  # a partition column's rows share a few values (a few days), as exports do
    few = {cut: [valid_value(contract.column(cut), rng, i) for i in range(PARTITION_VALUES)]} if cut else {}

    def value(column: Column, index: int) -> str:
        if column.nullable and rng.random() < NULL_SHARE:  # a key column is never nullable (pipeline.contract)
            return ""
        if column.name in few:
            return rng.choice(few[column.name])
        return valid_value(column, rng, index, contract.quality.mean_between.get(column.name))

    for index in range(rows * TRIES):
        if len(valid) == rows:
            break
        row = {c.name: value(c, index) for c in contract.columns}
        key = tuple(row[k] for k in contract.key)
        if key not in keys and not contract.check_row(row)[1]:
            keys.add(key)
            valid.append(row)
    if len(valid) < rows:
        raise GenerateError(f"{contract.name}: only {len(valid)} rows of distinct keys, not {rows}")
    return valid


def generate(contract: Contract, rows: int, *, seed: int = 0) -> tuple[list[dict[str, str]], list[Broken]]:
    """`rows` valid rows (unique keys, the batch within the gate's mean bands), and one row per rule a column has
    that breaks that rule alone."""
    rng = random.Random(seed)  # noqa: S311 (test data, reproducible)
    valid = _valid_rows(contract, rows, rng)
    for name, band in contract.quality.mean_between.items():
        if name not in contract.key:
            _fit_mean(valid, contract.column(name), band, rng)
    broken = []
    template = valid[0] if valid else _valid_rows(contract, 1, rng)[0]  # a row alone need not meet a mean band
    for column in contract.columns:
        for text in _breakers(column):
            row = dict(template, **{column.name: text})
            reasons = contract.check_row(row)[1]
            if len(reasons) == 1:  # a text that happens to break two rules is left out
                broken.append(Broken(row, reasons[0]))
    return valid, broken


def reasons_file(contract: Contract, folder: Path) -> Path:
    """Where `write_files` says why each broken row is broken: beside the landing folder, not in it (a file in it
    would be landed too)."""
    return folder.parent / f"{folder.name}-reasons" / contract.dataset / f"{contract.table}.json"


def csv_text(contract: Contract, rows: list[dict[str, str]]) -> str:
    """`rows` as a file of the contract's format holds them (`pipeline.csv_format.csv_text`)."""
    return format_csv_text(contract.format, contract.column_names, rows)


def write_files(contract: Contract, folder: Path, rows: int, *, seed: int = 0) -> tuple[Path, Path]:
    """`<folder>/<dataset>/<table>/generated-valid.csv` and `generated-invalid.csv` in the contract's format, and
    `reasons_file`: each broken row and the reason the pipeline gives (written again where they are)."""
    valid, broken = generate(contract, rows, seed=seed)
    directory = folder / contract.dataset / contract.table
    directory.mkdir(parents=True, exist_ok=True)
    valid_file, invalid_file = directory / "generated-valid.csv", directory / "generated-invalid.csv"
    valid_file.write_bytes(csv_text(contract, valid).encode(contract.format.encoding))
    invalid_file.write_bytes(csv_text(contract, [b.row for b in broken]).encode(contract.format.encoding))
    expected = [{"row": b.row, "reason": b.reason} for b in broken]
    reasons = reasons_file(contract, folder)
    reasons.parent.mkdir(parents=True, exist_ok=True)
    reasons.write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return valid_file, invalid_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.generate",  # pragma: no mutate
        description=(__doc__ or "").splitlines()[0],  # pragma: no mutate
    )
    parser.add_argument(
        "--table",
        required=True,
        help="<dataset>/<table> of a contract under contracts/",  # pragma: no mutate
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=100,
        help="valid rows (default 100)",  # pragma: no mutate
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("build/generated"),
        help="a folder laid out as landing is",  # pragma: no mutate
    )
    args = parser.parse_args(argv)
    try:
        contract = contract_named(load_contracts(), args.table)
        valid, invalid = write_files(contract, args.out, args.rows, seed=args.seed)
    except (ContractError, GenerateError) as error:
        print(error, file=sys.stderr)
        return 2
    reasons = reasons_file(contract, args.out)
    print(f"{valid}\n{invalid} (each row's reason: {reasons})\nrun them: make pipeline DATA={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
