"""Can this raw file be read against its contract? Decided on the whole file, streamed: every byte
decoded in the declared encoding (the byte offset if not), and a header whose names are present, unique
and not empty. What this lets through, the Glue job reads without crashing; what it stops goes to
quarantine whole with the reason. Reasons never quote the file's content (it may be patient data)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from pipeline.contract import Contract
from pipeline.csv_format import (
    LineModeHazards,
    Readable,
    UnreadableFile,
    always_read_whole,
    decoded_chunks,
    header_and_records,
    header_problem,
)

OTHER_DELIMITERS = (";", "\t", "|", ",")


@dataclass(frozen=True)
class Verdict:
    readable: bool
    reason: str = ""
    unknown_columns: list[str] = field(default_factory=list)
    read_whole: bool = True
    """Whether Spark must read the file whole (multiLine), as reading it by lines would change its records
    (`pipeline.csv_format.LineModeHazards`; a readable file's: an unreadable one is never read)."""


def inspect(stream: Readable, name: str, contract: Contract) -> Verdict:
    """Read the whole file (`name` gives its compression) and say whether the pipeline can read it, and
    whether reading it by lines would change its records (raw_to_staging then reads it whole, without a scan)."""
    fmt = contract.format
    whole = always_read_whole(name, fmt)
    hazards = LineModeHazards(fmt.quote)
    chunks: Iterator[str] = decoded_chunks(stream, name, fmt)
    if not whole:  # read whole whatever its lines hold: no need to look at them
        chunks = hazards.watch(chunks)
    try:
        header, rows = header_and_records(chunks, fmt, contract.column_names)
        empty = header in ([], [""]) or (not fmt.header and next(rows, None) is None)
        for _chunk in chunks:  # the rest of the file: every byte must decode
            pass
    except UnreadableFile as exc:
        return Verdict(False, str(exc))
    if empty:
        return Verdict(False, "the file is empty")
    verdict = _check_header(header, contract)
    if not verdict.readable:
        return verdict
    return replace(verdict, read_whole=whole or hazards.found)


def _check_header(header: list[str], contract: Contract) -> Verdict:
    missing, unknown = contract.header_problems(header)
    if len(header) < 2 or len(missing) == len(contract.columns):  # before anything that quotes its names
        return Verdict(
            False,
            f"the first line is not a CSV header of {contract.name}: none of its {len(header)} "
            f"field(s) is a column of the contract{_hint(header, contract)}",
        )
    problem = header_problem(header, contract.column_names)
    if problem:
        return Verdict(False, f"{problem} (contract {contract.name})")
    if missing:
        return Verdict(False, f"the header lacks the contract's columns {missing} (contract {contract.name})")
    if unknown and contract.unknown_columns == "quarantine":  # their names may be data: counted, not quoted
        return Verdict(
            False,
            f"the header has {len(unknown)} column(s) the contract does not name, and {contract.name} quarantines "
            f"such files (unknown_columns: quarantine in contracts/{contract.name}.yaml): add them to the "
            "contract, or accept them",
        )
    return Verdict(True, unknown_columns=unknown)


def _hint(header: list[str], contract: Contract) -> str:
    """What the file's author most likely meant: another delimiter, or no header line at all."""
    where = f"contracts/{contract.name}.yaml"
    if len(header) == 1:
        for delimiter in OTHER_DELIMITERS:
            split = [h.strip() for h in header[0].split(delimiter)]
            if delimiter != contract.format.delimiter and not contract.header_problems(split)[0]:
                return f" (it splits into the columns on {delimiter!r}: declare format.delimiter in {where})"
    if len(header) == len(contract.columns) and contract.format.header:
        return f" (a file without a header line? declare format.header: false in {where})"
    return ""
